// `meshtune recommend` on log mixes as real clusters produce them: several Istio TEXT eras,
// JSON, a Helm-installed gateway, a waypoint, ztunnel, a slime-style global-sidecar hop,
// `kubectl logs --prefix` output that interleaves app containers, and one pod spread over two
// files. Acceptance: no Sidecar for a non-sidecar proxy, one Sidecar per workload, nothing invalid printed.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { meshtune } from "./helpers/cli.js";
import { TEXT_1_9, TEXT_LEGACY, TEXT_INBOUND, TEXT_EGRESS_GW, JSON_LINE, prefixed } from "./fixtures/lines.js";
import { validateSidecar } from "../controller/sidecar/validate.js";
import { egressHostError, objectNameError } from "../controller/istio/validate.js";
import { deploymentPod } from "./fixtures/pods.js";

const PP = "productpage-v1-6987489c74-6fgz8",
  DT = "details-v1-79f774bdb9-kx7lq",
  GW = "istio-ingress-7c9d8f6b5-q8w2z",
  WP = "waypoint-5b9c7d8f6-z9x8c",
  ZT = "ztunnel-h7k2p";
const ZTUNNEL_LINE =
  '2026-11-20T10:00:04.100Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.1.50:40000 src.workload="productpage-v1" src.namespace="bookinfo" dst.addr=10.244.1.12:15008 dst.service="details.bookinfo.svc.cluster.local" direction="outbound" bytes_sent=120 bytes_recv=400 duration="3ms"';
const WAYPOINT_LINE =
  '[2026-11-20T10:00:04.000Z] "GET /details/0 HTTP/1.1" 200 - via_upstream - "-" 0 178 3 3 "-" "curl/8" "id-1" "details:9080" "envoy://connect_originate/10.244.1.12:9080" inbound-vip|9080|http|details.bookinfo.svc.cluster.local envoy://internal_client_address/ 10.96.12.4:9080 10.244.1.50:37652 - default';
const GATEWAY_LINE =
  '[2026-11-20T10:00:02.000Z] "GET /productpage HTTP/1.1" 200 - via_upstream - "-" 0 5290 40 39 "10.0.0.1" "Mozilla/5.0" "id-2" "bookinfo.example.com" "10.244.1.50:9080" outbound|9080||productpage.bookinfo.svc.cluster.local 10.244.1.60:41000 10.244.1.60:8080 10.0.0.1:53000 - -';
// slime lazyload: unknown destinations go to the global-sidecar cluster first.
const SLIME_LINE =
  '[2026-11-20T10:00:06.000Z] "GET /ratings/0 HTTP/1.1" 200 - via_upstream - "-" 0 48 9 8 "-" "Go-http-client/1.1" "id-3" "ratings:9080" "10.244.2.9:80" outbound|80||global-sidecar.mesh-operator.svc.cluster.local 10.244.1.12:43000 10.96.12.9:9080 10.244.1.12:42999 - default';
const APP_LINE = '{"level":"info","msg":"GET /details/0 200","upstream_cluster":"outbound|80||*","response_code":200}';
const JUNK_POD =
  "[pod/../etc/passwd/istio-proxy] " +
  TEXT_1_9.replace("outbound|9080||details.bookinfo.svc.cluster.local", "outbound|80||*");
const BUGGY_124 = JSON.stringify({
  ...JSON.parse(JSON_LINE),
  upstream_cluster: "outbound|7070||cart.shop.svc.cluster.local;",
});

test("real-world mix: one Sidecar per sidecar workload, none for gateways/waypoints/ztunnel, nothing invalid", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-rw-"));
  const a = join(dir, "a.log"),
    b = join(dir, "b.log"),
    cat = join(dir, "catalog.yaml");
  writeFileSync(
    a,
    [
      prefixed(PP, TEXT_1_9),
      prefixed(PP, TEXT_LEGACY),
      prefixed(PP, TEXT_INBOUND.replace(/details/g, "productpage")),
      `[pod/${PP}/productpage] ${APP_LINE}`,
      prefixed(DT, TEXT_INBOUND),
      prefixed(DT, SLIME_LINE),
      prefixed(GW, GATEWAY_LINE),
      prefixed(WP, WAYPOINT_LINE),
      prefixed(ZT, ZTUNNEL_LINE),
      JUNK_POD,
      prefixed(PP, BUGGY_124),
    ].join("\n") + "\n",
  );
  // the same productpage pod in a second file, with nothing that reveals its namespace
  writeFileSync(b, [prefixed(PP, TEXT_EGRESS_GW), prefixed(PP, JSON_LINE)].join("\n") + "\n");
  const r = meshtune(["recommend", "--access-log", a, "--access-log", b, "-o", "json"]);
  assert.is(r.code, 0, r.stderr);
  const items = JSON.parse(r.stdout).items as any[];
  const names = items.map((s) => `${s.metadata.namespace}/${s.metadata.name}`);
  assert.equal(names, ["bookinfo/details-v1", "bookinfo/productpage-v1"], r.stderr);
  for (const s of items) {
    validateSidecar(s);
    assert.is(objectNameError(s.metadata.name), null);
    for (const h of s.spec.egress[0].hosts) assert.is(egressHostError(h), null, h);
  }
  assert.not.ok(
    items.some((s) => s.spec.egress[0].hosts.some((h: string) => h === "*/*" || h.includes(";"))),
    "nothing widened, nothing malformed",
  );
  assert.match(r.stderr, /waypoint skipped: default\/waypoint \(waypoint-only cluster/);
  assert.match(r.stderr, /ztunnel skipped: default\/ztunnel \(ztunnel access-log lines/);
  assert.match(r.stderr, /gateway skipped: istio-system\/istio-ingress/);
  assert.match(r.stderr, /not-proxy-container 1/);
  assert.match(r.stderr, /rejected by Istio validation/);
  assert.match(r.stderr, /"\*\/cart.shop.svc.cluster.local;"|cart\.shop\.svc\.cluster\.local;/);
  // The slime-style hop teaches the requested host (ratings), resolved in the caller's namespace.
  const dt = items.find((s) => s.metadata.name === "details-v1");
  assert.ok(
    dt.spec.egress[0].hosts.includes("bookinfo/ratings.bookinfo.svc.cluster.local"),
    dt.spec.egress[0].hosts.join(" "),
  );

  // With a pod catalog (YAML), the cluster decides: namespace, workload, selector, gateway-ness.
  const pp = deploymentPod("bookinfo", "productpage-v1", "6987489c74", "6fgz8", { app: "productpage", version: "v1" });
  const gw = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: GW,
      namespace: "istio-ingress",
      labels: { app: "istio-ingress", istio: "ingress" },
      annotations: { "inject.istio.io/templates": "gateway" },
    },
    spec: { containers: [{ name: "istio-proxy" }] },
  };
  writeFileSync(cat, [{ apiVersion: "v1", kind: "Pod", ...pp }, gw].map((o) => JSON.stringify(o)).join("\n---\n"));
  const r2 = meshtune(["recommend", "--access-log", a, "--access-log", b, "--catalog", cat, "-o", "json"]);
  assert.is(r2.code, 0, r2.stderr);
  const pp2 = (JSON.parse(r2.stdout).items as any[]).find((s) => s.metadata.name === "productpage-v1");
  assert.equal(pp2.spec.workloadSelector.labels, { app: "productpage", version: "v1" });
  assert.match(r2.stderr, /gateway skipped: istio-ingress\/istio-ingress/);
  assert.match(r2.stderr, /pods placed from the pod catalog: 2/);
});

test.run();

// Offline, the access-log learner does what the fallback and the filter do live: lines through a
// fallback cluster (meshtune's, or Slime's global-sidecar) teach the requested host resolved in
// the caller's namespace; block_all refusals teach in-mesh hosts and list external ones as
// BLOCKED with a suggested ServiceEntry.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Readable } from "node:stream";
import { AccessLogLearner } from "../controller/accesslog/learner.js";
import { generateSidecars, DEFAULT_GENERATE } from "../controller/sidecar/generate.js";
import { HostIndex } from "../controller/istio/hosts.js";
import { parseCatalog } from "../controller/sidecar/catalog.js";
import * as L from "./fixtures/lines.js";

const svc = (name: string, ip: string) => ({
  kind: "Service",
  metadata: { name, namespace: "bookinfo" },
  spec: { clusterIP: ip, ports: [{ name: "http", port: 9080 }] },
});
const catalog = parseCatalog({
  items: [svc("ratings", "10.96.0.20"), svc("reviews", "10.96.0.21"), svc("productpage", "10.96.0.22")],
});

test("fallback and global-sidecar lines teach the requested host; block_all teaches in-mesh hosts and reports external ones", async () => {
  const l = new AccessLogLearner({ defaultNamespace: "bookinfo", clusterDomain: "cluster.local" });
  const blockedExternal = L.TEXT_BLOCK_ALL.replace('"ratings:9080"', '"api.unknown.example:443"').replace(
    "10.96.0.20:9080",
    "198.51.100.7:443",
  );
  await l.learnStream(
    Readable.from(
      [L.TEXT_VIA_FALLBACK, L.TEXT_VIA_GLOBAL_SIDECAR, L.TEXT_BLOCK_ALL, blockedExternal].map((x) =>
        Buffer.from(L.prefixed("productpage-v1-6987489c74-6fgz8", x) + "\n"),
      ),
    ),
  );
  const { graph } = l.finish();
  const r = generateSidecars(graph, { ...DEFAULT_GENERATE, index: new HostIndex(catalog) });
  const sc = r.sidecars.find((s) => s.metadata.name === "productpage-v1")!;
  const hosts = sc.spec.egress[0].hosts;
  assert.ok(hosts.includes("bookinfo/ratings.bookinfo.svc.cluster.local"), hosts.join(" "));
  assert.ok(hosts.includes("bookinfo/reviews.bookinfo.svc.cluster.local"));
  assert.not.ok(
    hosts.some((h) => h.includes("global-sidecar")),
    "the fallback proxy itself is not a dependency",
  );
  assert.not.ok(hosts.some((h) => h.includes("unknown.example")));
  const blocked = r.unregistered.filter((u) => u.kind === "blackhole");
  assert.equal(
    blocked.map((u) => [u.authority, u.suggestion?.spec.hosts]),
    [["api.unknown.example:443", ["api.unknown.example"]]],
  );
});

test.run();

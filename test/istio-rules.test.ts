// Istio's own validation, identity and mesh-config rules as meshtune applies them, rule by rule,
// with the inputs real clusters and real logs produce.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { egressHostError, labelError, objectNameError } from "../controller/istio/validate.js";
import { compactHosts, requestedFqdn, HostIndex } from "../controller/istio/hosts.js";
import { parseMeshConfig } from "../controller/istio/mesh-config.js";
import { proxyOfPod, selectorOfPod, workloadOfPod } from "../controller/model/identity.js";
import { scopeHosts, hostsOfEdge, DEFAULT_SCOPE } from "../controller/sidecar/scope.js";
import { virtualServiceRef } from "../controller/istio/virtual-services.js";
import { deploymentPod } from "./fixtures/pods.js";

test("egress hosts: Istio ValidateNamespaceSlashWildcardHostname (sidecar)", () => {
  for (const ok of [
    "bookinfo/reviews.bookinfo.svc.cluster.local",
    "*/api.stripe.com",
    "istio-system/*",
    "./foo.com",
    "*/*.example.com",
    "~bookinfo/x.bookinfo.svc.cluster.local",
    "*/*",
  ])
    assert.is(egressHostError(ok), null, ok);
  for (const [bad, why] of [
    ["reviews.bookinfo.svc.cluster.local", /namespace\/dnsName/],
    ["*/reviews", /short names/],
    ["*/10.0.0.1", /all-numeric/],
    ["*/api.stripe.com;", /invalid/],
    ["*/foo*.com", /invalid|partial/],
    ["Bad_NS/x.com", /invalid namespace/],
    ["../../x/y.com", /invalid namespace/],
    ["*/a b.com", /invalid/],
    ["*/x\nkind: Secret.com", /invalid/],
    [`*/${"a".repeat(64)}.com`, /invalid/],
  ] as const)
    assert.match(egressHostError(bad) ?? "", why, bad);
});

test("names and labels: DNS-1123 subdomain; label key/value syntax", () => {
  assert.is(objectNameError("reviews-v2"), null);
  assert.ok(objectNameError("[pod/../x]"));
  assert.ok(objectNameError("Reviews"));
  assert.is(labelError("app.kubernetes.io/name", "reviews"), null);
  assert.ok(labelError("app", "a b"));
  assert.ok(labelError("bad key", "x"));
});

test("hosts: requested authority resolved in the caller's namespace; compact list without Istio's duplicate warnings", () => {
  const idx = new HostIndex([
    { namespace: "db", host: "mysql.db.svc.cluster.local", vip: false, ports: [], endpoints: 1, exportTo: [] },
  ]);
  assert.is(requestedFqdn("reviews:9080", "bookinfo", "cluster.local", idx), "reviews.bookinfo.svc.cluster.local");
  assert.is(requestedFqdn("mysql.db", "shop", "cluster.local", idx), "mysql.db.svc.cluster.local");
  assert.is(requestedFqdn("example.com", "shop", "cluster.local", idx), "example.com");
  assert.is(requestedFqdn("Reviews.Bookinfo.svc.", "x", "cluster.local", idx), "reviews.bookinfo.svc.cluster.local");
  assert.is(requestedFqdn("10.96.0.7:80", "x", "cluster.local", idx), null);
  assert.equal(
    compactHosts([
      "istio-system/*",
      "istio-system/istiod.istio-system.svc.cluster.local",
      "a/x.com",
      "a/*.x.com",
      "a/b.x.com",
      "a/x.com",
    ]),
    ["a/*.x.com", "a/x.com", "istio-system/*"],
  );
  assert.equal(compactHosts(["*/*", "a/b.com"]), ["*/*"]);
});

test("scope: learned wildcards and malformed hosts are rejected with their source; collector, providers, VS namespaces kept", () => {
  const rejected: { candidate: string; reason: string; source: string }[] = [];
  const e = (cluster: string, authority = "") => ({
    dir: "outbound" as const,
    cluster,
    authority,
    proto: "HTTP/1.1",
    count: 1,
    err4xx: 0,
    err5xx: 0,
    buckets: [],
    sumUs: 0,
    firstSeenMs: 0,
    lastSeenMs: 0,
    timing: null,
  });
  assert.equal(hostsOfEdge(e("outbound|80||*"), "bookinfo", DEFAULT_SCOPE, rejected), []);
  assert.equal(hostsOfEdge(e("outbound|80||api.stripe.com;"), "bookinfo", DEFAULT_SCOPE, rejected), []);
  assert.equal(
    rejected.map((r) => r.source),
    ["cluster outbound|80||*", "cluster outbound|80||api.stripe.com;"],
  );
  assert.equal(
    hostsOfEdge(
      e("outbound|9080||reviews.bookinfo.svc.cluster.local", "reviews.example.com"),
      "bookinfo",
      DEFAULT_SCOPE,
    ),
    ["bookinfo/reviews.bookinfo.svc.cluster.local", "*/reviews.example.com"],
  );
  const mesh = parseMeshConfig(
    `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n    outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n    extensionProviders:\n    - name: otel\n      opentelemetry: {service: opentelemetry-collector.observability.svc.cluster.local, port: 4317}\n    - name: authz\n      envoyExtAuthzGrpc: {service: authz/ext-authz.authz.svc.cluster.local, port: 9000}\n`,
  );
  assert.is(mesh.outboundMode, "REGISTRY_ONLY");
  const vs = virtualServiceRef(
    { metadata: { namespace: "routing", name: "reviews" }, spec: { hosts: ["reviews.bookinfo.svc.cluster.local"] } },
    "cluster.local",
  )!;
  const hosts = scopeHosts(["bookinfo/reviews.bookinfo.svc.cluster.local"], "bookinfo", {
    ...DEFAULT_SCOPE,
    mesh,
    virtualServices: [vs],
  });
  assert.equal(hosts, [
    "authz/ext-authz.authz.svc.cluster.local",
    "bookinfo/reviews.bookinfo.svc.cluster.local",
    "istio-system/*",
    "meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local",
    "observability/opentelemetry-collector.observability.svc.cluster.local",
    "routing/reviews.bookinfo.svc.cluster.local",
  ]);
  assert.throws(() => parseMeshConfig("outboundTrafficPolicy: {mode: SOMETIMES}"), /not ALLOW_ANY or REGISTRY_ONLY/);
});

test("identity from Pod objects (Istio GetDeployMetaFromPod); proxy kind from labels/annotations, never names", () => {
  const p = deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" });
  assert.is(workloadOfPod(p), "reviews-v2");
  assert.equal(selectorOfPod(p), { app: "reviews", version: "v2" });
  assert.is(proxyOfPod(p).kind, "sidecar");
  const cron = {
    metadata: {
      name: "backup-28912345-x7k2p",
      generateName: "backup-28912345-",
      labels: {},
      ownerReferences: [{ kind: "Job", name: "backup-28912345", controller: true }],
    },
    spec: { containers: [{ name: "c" }, { name: "istio-proxy" }] },
  };
  assert.is(workloadOfPod(cron), "backup");
  assert.is(
    workloadOfPod({
      metadata: {
        name: "mysql-0",
        generateName: "mysql-",
        ownerReferences: [{ kind: "StatefulSet", name: "mysql", controller: true }],
      },
    }),
    "mysql",
  );
  assert.is(
    workloadOfPod({ metadata: { name: "x", labels: { "service.istio.io/workload-name": "override" } } }),
    "override",
  );
  // Helm gateway chart: name "istio-ingress", `istio: ingress`, annotation inject.istio.io/templates=gateway
  const helmGw = {
    metadata: {
      name: "istio-ingress-6b7c9d-abcde",
      labels: { app: "istio-ingress", istio: "ingress" },
      annotations: { "inject.istio.io/templates": "gateway" },
    },
    spec: { containers: [{ name: "istio-proxy" }] },
  };
  assert.is(proxyOfPod(helmGw).kind, "gateway");
  const waypoint = {
    metadata: {
      name: "waypoint-7d9f-xx",
      labels: {
        "gateway.istio.io/managed": "istio.io-mesh-controller",
        "gateway.networking.k8s.io/gateway-name": "waypoint",
      },
    },
    spec: { containers: [{ name: "istio-proxy" }] },
  };
  assert.is(proxyOfPod(waypoint).kind, "waypoint");
  const zt = {
    metadata: {
      name: "ztunnel-abcde",
      labels: { app: "ztunnel", "istio.io/dataplane-mode": "none", "sidecar.istio.io/inject": "false" },
    },
    spec: { containers: [{ name: "istio-proxy" }] },
  };
  assert.is(proxyOfPod(zt).kind, "ztunnel");
  // An app merely named like a gateway is still a sidecar.
  assert.is(
    proxyOfPod(deploymentPod("shop", "payment-gateway", "5f6d7c8b9", "q2w3e", { app: "payment-gateway" })).kind,
    "sidecar",
  );
  assert.is(
    proxyOfPod(deploymentPod("shop", "batch", "5f6d7c8b9", "q2w3e", { app: "batch" }, { sidecar: false })).kind,
    "none",
  );
});

test.run();

import { test } from "uvu";
import * as assert from "uvu/assert";
import { Graph, emptyStats, type WorkloadNode } from "../controller/model/graph.js";
import { generateSidecars, DEFAULT_GENERATE } from "../controller/sidecar/generate.js";
import { validateSidecar, validateServiceEntry } from "../controller/sidecar/validate.js";
import { workloadFromPod, defaultLabels } from "../controller/model/workload.js";
import { parseCluster } from "../controller/model/cluster-name.js";

function edge(g: Graph, n: WorkloadNode, cluster: string, authority = "", dir: "outbound" | "inbound" = "outbound") {
  const s = emptyStats(1000);
  s.count = 1;
  g.addEdge(n, { dir, cluster, authority, proto: "HTTP/1.1" }, s);
}

function one(g: Graph) {
  const r = generateSidecars(g, DEFAULT_GENERATE);
  return { r, hosts: r.sidecars[0]?.spec.egress[0].hosts ?? [] };
}

test("workload name from pod name", () => {
  assert.is(workloadFromPod("productpage-v1-6987489c74-6fgz8"), "productpage-v1");
  assert.is(workloadFromPod("mysql-0"), "mysql");
  assert.is(workloadFromPod("web-12"), "web");
  assert.is(workloadFromPod("node-exporter-x7k2p"), "node-exporter");
  assert.is(workloadFromPod("ratings"), "ratings");
  assert.equal(defaultLabels("reviews-v2"), { app: "reviews", version: "v2" });
  assert.equal(defaultLabels("cart"), { app: "cart" });
});

test("cluster names: pipe form, SNI form, specials", () => {
  assert.equal(parseCluster("outbound|9080|v1|reviews.default.svc.cluster.local"), {
    kind: "outbound",
    port: 9080,
    subset: "v1",
    host: "reviews.default.svc.cluster.local",
    egressGateway: false,
  });
  assert.equal(parseCluster("outbound_.9080_.v1_.reviews.default.svc.cluster.local"), {
    kind: "outbound",
    port: 9080,
    subset: "v1",
    host: "reviews.default.svc.cluster.local",
    egressGateway: false,
  });
  assert.ok(parseCluster("outbound|443||istio-egressgateway.istio-system.svc.cluster.local").egressGateway);
  assert.is(parseCluster("inbound|9080||").kind, "inbound");
  assert.is(parseCluster("InboundPassthroughClusterIpv4").kind, "inbound");
  assert.is(parseCluster("PassthroughCluster").kind, "passthrough");
  assert.is(parseCluster("BlackHoleCluster").kind, "blackhole");
  assert.is(parseCluster("prometheus_stats").kind, "other");
  assert.is(parseCluster("outbound|99999||x").kind, "other");
});

test("ns/host for svc hosts, */host otherwise, always-included defaults, sorted + deduped", () => {
  const g = new Graph();
  const n = g.node("bookinfo", "productpage-v1")!;
  edge(g, n, "outbound|9080||reviews.bookinfo.svc.cluster.local");
  edge(g, n, "outbound|9080|v2|reviews.bookinfo.svc.cluster.local");
  edge(g, n, "outbound|9080||details.bookinfo.svc.cluster.local");
  edge(g, n, "outbound|443||api.github.com");
  edge(g, n, "outbound|5432||db.data.svc.cluster.local");
  const { hosts } = one(g);
  assert.equal(hosts, [
    "*/api.github.com",
    "bookinfo/details.bookinfo.svc.cluster.local",
    "bookinfo/reviews.bookinfo.svc.cluster.local",
    "data/db.data.svc.cluster.local",
    "istio-system/*",
    "meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local",
  ]);
});

test("egress gateway adds the original authority host", () => {
  const g = new Graph();
  const n = g.node("shop", "payments-v1")!;
  edge(g, n, "outbound|80||istio-egressgateway.istio-system.svc.cluster.local", "api.stripe.com");
  edge(g, n, "outbound|80||istio-egressgateway.istio-system.svc.cluster.local", "hooks.slack.com:80");
  const { hosts } = one(g);
  assert.equal(hosts, [
    "*/api.stripe.com",
    "*/hooks.slack.com",
    "istio-system/*",
    "meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local",
  ]);
});

test("inbound, Passthrough and BlackHole never become hosts but are reported with a ServiceEntry", () => {
  const g = new Graph();
  const n = g.node("bookinfo", "details-v1")!;
  edge(g, n, "inbound|9080||", "details:9080", "inbound");
  const s = emptyStats(1);
  s.count = 3;
  g.addUnknown(
    n,
    { kind: "passthrough", dst: "142.250.74.10:443", authority: "", sni: "www.googleapis.com", proto: "TLS" },
    s,
  );
  g.addUnknown(n, { kind: "blackhole", dst: "10.50.0.9:5432", authority: "", sni: "", proto: "TCP" }, s);
  const { r, hosts } = one(g);
  assert.equal(hosts, ["istio-system/*", "meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local"]);
  assert.is(r.unregistered.length, 2);
  const se = r.unregistered.find((u) => u.kind === "passthrough")!.suggestion!;
  assert.equal(se.spec.hosts, ["www.googleapis.com"]);
  assert.equal(se.spec.ports, [{ number: 443, name: "tls-443", protocol: "TLS" }]);
  const bh = r.unregistered.find((u) => u.kind === "blackhole")!.suggestion!;
  assert.equal(bh.spec.addresses, ["10.50.0.9/32"]);
  validateServiceEntry(se);
  validateServiceEntry(bh);
});

test("gateways are skipped with a note; ordering is stable; filters apply", () => {
  const g = new Graph();
  for (const [ns, w] of [
    ["shop", "cart-v1"],
    ["istio-system", "istio-ingressgateway"],
    ["bookinfo", "ratings-v1"],
    ["bookinfo", "details-v1"],
  ]) {
    const n = g.node(ns, w)!;
    if (w.includes("gateway")) n.proxy = { kind: "gateway", why: "annotation inject.istio.io/templates=gateway" };
    edge(g, n, "outbound|9080||ratings.bookinfo.svc.cluster.local");
  }
  const r = generateSidecars(g, DEFAULT_GENERATE);
  assert.equal(
    r.sidecars.map((s) => `${s.metadata.namespace}/${s.metadata.name}`),
    ["bookinfo/details-v1", "bookinfo/ratings-v1", "shop/cart-v1"],
  );
  assert.equal(
    r.proxiesSkipped.map((p) => `${p.kind} ${p.workload}`),
    ["gateway istio-system/istio-ingressgateway"],
  );
  assert.is(generateSidecars(g, { ...DEFAULT_GENERATE, namespace: "shop" }).sidecars.length, 1);
  assert.is(
    generateSidecars(g, { ...DEFAULT_GENERATE, workload: "bookinfo/ratings-v1" }).sidecars[0].metadata.name,
    "ratings-v1",
  );
});

test("generated Sidecars validate against Istio's schema; labels and selector", () => {
  const g = new Graph();
  const n = g.node("bookinfo", "reviews-v2")!;
  edge(g, n, "outbound|9080||ratings.bookinfo.svc.cluster.local");
  const s = generateSidecars(g, {
    ...DEFAULT_GENERATE,
    egressProxy: { host: "meshtune-fallback.meshtune-system.svc.cluster.local", port: 80 },
  }).sidecars[0];
  validateSidecar(s);
  assert.equal(s.metadata.labels, { "app.kubernetes.io/managed-by": "meshtune" });
  assert.equal(s.spec.workloadSelector.labels, { app: "reviews", version: "v2" });
  assert.is(s.spec.outboundTrafficPolicy!.egressProxy!.port.number, 80);
  // The validator really rejects a bad object.
  const bad = structuredClone(s) as any;
  bad.spec.outboundTrafficPolicy.mode = "SOMETIMES";
  assert.throws(() => validateSidecar(bad), /mode/);
  bad.spec.outboundTrafficPolicy.mode = "ALLOW_ANY";
  bad.spec.egress[0].hosts = "bookinfo/*";
  assert.throws(() => validateSidecar(bad), /hosts/);
});

test.run();

// The Istio scope model (test/istio/scope-model.ts) against known answers taken from Istio's own
// tests (pilot/pkg/model/sidecar_test.go TestContainsEgressDependencies: inputs and expected
// outcomes as facts) and from the rules it cites; then meshtune's generator against it.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ProxyScope, type Mesh } from "./istio/scope-model.js";
import { buildSidecar, type SidecarObj } from "../controller/sidecar/generate.js";

const sc = (ns: string, hosts: string[], extra: Partial<SidecarObj["spec"]> = {}) => {
  const s = buildSidecar(ns, "w", { app: "w" }, hosts) as SidecarObj;
  Object.assign(s.spec, extra);
  return s;
};
const svc1: Mesh = {
  services: [
    { namespace: "ns", host: "svc1.com", ports: [80] },
    { namespace: "nomatch", host: "nomatch", ports: [80] },
  ],
  virtualServices: [{ namespace: "ns", hosts: ["svc1.com"], route: { host: "svc1.com" } }],
  outbound: "ALLOW_ANY",
};

test("Istio TestContainsEgressDependencies: which egress hosts import svc1.com (ns) and its VirtualService", () => {
  const has = (p: ProxyScope) => p.clusters().has("outbound|80||svc1.com") && p.virtualServices.length === 1;
  assert.ok(has(new ProxyScope("default", sc("default", ["*/*"]), svc1)), "Just wildcard");
  assert.ok(has(new ProxyScope("default", sc("default", ["ns/*", "*/*"]), svc1)), "Namespace and wildcard");
  assert.ok(has(new ProxyScope("default", sc("default", ["ns/*"]), svc1)), "Just Namespace");
  const other = {
    ...svc1,
    services: [{ namespace: "other-ns", host: "svc1.com", ports: [80] }],
    virtualServices: [{ namespace: "other-ns", hosts: ["svc1.com"], route: { host: "svc1.com" } }],
  };
  assert.not.ok(has(new ProxyScope("default", sc("default", ["ns/*"]), other)), "Wrong Namespace");
  assert.ok(has(new ProxyScope("default", null, svc1)), "No Sidecar");
});

test("R2: a VirtualService is imported only under its own namespace; R3: its destination becomes a cluster", () => {
  const mesh: Mesh = {
    services: [
      { namespace: "bookinfo", host: "reviews.bookinfo.svc.cluster.local", ports: [9080] },
      { namespace: "bookinfo", host: "reviews-v2.bookinfo.svc.cluster.local", ports: [9080] },
    ],
    virtualServices: [
      {
        namespace: "routing",
        hosts: ["reviews.bookinfo.svc.cluster.local"],
        route: { host: "reviews-v2.bookinfo.svc.cluster.local" },
      },
    ],
    outbound: "ALLOW_ANY",
  };
  const without = new ProxyScope("bookinfo", sc("bookinfo", ["bookinfo/reviews.bookinfo.svc.cluster.local"]), mesh);
  assert.equal(
    without.route("reviews", 9080),
    { cluster: "outbound|9080||reviews.bookinfo.svc.cluster.local" },
    "VS lost: request goes to the plain service",
  );
  const withNs = new ProxyScope(
    "bookinfo",
    sc("bookinfo", ["bookinfo/reviews.bookinfo.svc.cluster.local", "routing/reviews.bookinfo.svc.cluster.local"]),
    mesh,
  );
  assert.equal(withNs.route("reviews", 9080), { cluster: "outbound|9080||reviews-v2.bookinfo.svc.cluster.local" });
  assert.ok(withNs.clusters().has("outbound|9080||reviews-v2.bookinfo.svc.cluster.local"));
});

test("R5/R6/R7: short names, ALLOW_ANY passthrough, egressProxy that is not imported → 503 NC, REGISTRY_ONLY → block_all", () => {
  const mesh: Mesh = {
    services: [
      { namespace: "bookinfo", host: "ratings.bookinfo.svc.cluster.local", ports: [9080] },
      { namespace: "meshtune-system", host: "meshtune-fallback.meshtune-system.svc.cluster.local", ports: [80] },
    ],
    virtualServices: [],
    outbound: "ALLOW_ANY",
  };
  const p = new ProxyScope("bookinfo", null, mesh);
  for (const h of ["ratings", "ratings.bookinfo", "ratings.bookinfo.svc", "ratings.bookinfo.svc.cluster.local"])
    assert.equal(p.route(h, 9080), { cluster: "outbound|9080||ratings.bookinfo.svc.cluster.local" }, h);
  assert.equal(
    new ProxyScope("other", null, mesh).route("ratings", 9080),
    { cluster: "PassthroughCluster" },
    "short name only in its own namespace",
  );
  const ep = {
    outboundTrafficPolicy: {
      mode: "ALLOW_ANY" as const,
      egressProxy: { host: "meshtune-fallback.meshtune-system.svc.cluster.local", port: { number: 80 } },
    },
  };
  assert.equal(new ProxyScope("bookinfo", sc("bookinfo", ["istio-system/*"], ep), mesh).route("api.example.com", 80), {
    cluster: null,
    code: 503,
    flag: "NC",
  });
  assert.equal(
    new ProxyScope(
      "bookinfo",
      sc("bookinfo", ["istio-system/*", "meshtune-system/meshtune-fallback.meshtune-system.svc.cluster.local"], ep),
      mesh,
    ).route("api.example.com", 80),
    { cluster: "outbound|80||meshtune-fallback.meshtune-system.svc.cluster.local" },
  );
  const ro = { ...mesh, outbound: "REGISTRY_ONLY" as const };
  assert.equal(new ProxyScope("bookinfo", sc("bookinfo", ["istio-system/*"]), ro).route("api.example.com", 80), {
    cluster: null,
    code: 502,
    flag: "block_all",
  });
  assert.equal(
    new ProxyScope("bookinfo", sc("bookinfo", ["istio-system/*", "meshtune-system/*"], ep), ro).route(
      "api.example.com",
      80,
    ).cluster,
    "outbound|80||meshtune-fallback.meshtune-system.svc.cluster.local",
    "a Sidecar policy overrides the mesh (why meshtune never sets one in REGISTRY_ONLY)",
  );
});

test("R1: exclusions (~) and wildcards", () => {
  const mesh: Mesh = {
    services: [
      { namespace: "a", host: "x.a.svc.cluster.local", ports: [80] },
      { namespace: "a", host: "y.a.svc.cluster.local", ports: [80] },
      { namespace: "ext", host: "api.example.com", ports: [443] },
    ],
    virtualServices: [],
    outbound: "ALLOW_ANY",
  };
  const p = new ProxyScope("a", sc("a", ["a/*", "~a/y.a.svc.cluster.local", "*/*.example.com"]), mesh);
  assert.equal([...p.clusters()].sort(), [
    "BlackHoleCluster",
    "PassthroughCluster",
    "outbound|443||api.example.com",
    "outbound|80||x.a.svc.cluster.local",
  ]);
});

test.run();

import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseCatalog } from "../controller/sidecar/catalog.js";
import { estimateSavings, hostMatches, STATIC_CLUSTERS, STATIC_LISTENERS } from "../controller/sidecar/savings.js";
import type { SidecarObj } from "../controller/sidecar/generate.js";

const svc = (name: string, ns: string, ports: [number, string][], extra: object = {}) => ({
  kind: "Service",
  metadata: { name, namespace: ns, ...extra },
  spec: { clusterIP: "10.96.0.1", ports: ports.map(([port, n]) => ({ port, name: n })) },
});
const catalog = parseCatalog({
  items: [
    svc("reviews", "bookinfo", [[9080, "http"]]),
    svc("ratings", "bookinfo", [[9080, "http"]]),
    svc("mongodb", "bookinfo", [[27017, "tcp-mongo"]]),
    svc("cart", "shop", [
      [7070, "grpc"],
      [9090, "http-metrics"],
    ]),
    svc("istiod", "istio-system", [[15012, "https"]]),
    { kind: "Endpoints", metadata: { name: "reviews", namespace: "bookinfo" }, subsets: [{ addresses: [{}, {}, {}] }] },
    {
      kind: "ServiceEntry",
      metadata: { name: "stripe", namespace: "shop" },
      spec: { hosts: ["api.stripe.com"], ports: [{ number: 443, name: "https", protocol: "TLS" }] },
    },
  ],
});

const sidecar = (ns: string, hosts: string[]) =>
  ({ metadata: { name: "w", namespace: ns }, spec: { egress: [{ hosts }] } }) as unknown as SidecarObj;

test("catalog: services, ports, protocols, endpoints", () => {
  assert.is(catalog.length, 6);
  const reviews = catalog.find((s) => s.host === "reviews.bookinfo.svc.cluster.local")!;
  assert.is(reviews.endpoints, 3);
  assert.is(reviews.ports[0].http, true);
  assert.is(catalog.find((s) => s.host === "mongodb.bookinfo.svc.cluster.local")!.ports[0].http, false);
  assert.throws(() => parseCatalog({ kind: "Service" }), /List/);
});

test("host matching follows Sidecar semantics", () => {
  const reviews = catalog[0];
  assert.ok(hostMatches("bookinfo/reviews.bookinfo.svc.cluster.local", reviews, "x"));
  assert.ok(hostMatches("*/reviews.bookinfo.svc.cluster.local", reviews, "x"));
  assert.ok(hostMatches("./*", reviews, "bookinfo"));
  assert.not.ok(hostMatches("./*", reviews, "shop"));
  assert.ok(hostMatches("bookinfo/*", reviews, "x"));
  assert.ok(hostMatches("*/*.bookinfo.svc.cluster.local", reviews, "x"));
  assert.not.ok(hostMatches("~/*", reviews, "x"));
  assert.not.ok(hostMatches("shop/reviews.bookinfo.svc.cluster.local", reviews, "x"));
});

test("estimate: before = every service port, after = scoped; statics stay", () => {
  const s = estimateSavings(
    sidecar("bookinfo", ["bookinfo/ratings.bookinfo.svc.cluster.local", "istio-system/*"]),
    catalog,
  );
  // 7 service ports in all: reviews, ratings, mongodb, cart x2, istiod, stripe
  assert.is(s.before.clusters, STATIC_CLUSTERS + 7);
  assert.is(s.after.clusters, STATIC_CLUSTERS + 2);
  // HTTP ports 9080, 7070, 9090 → 3 listeners; TCP: mongodb, istiod(https is not http), stripe → 3
  assert.is(s.before.listeners, STATIC_LISTENERS + 6);
  assert.is(s.after.listeners, STATIC_LISTENERS + 1 + 1);
  assert.is(s.before.endpoints, 3 + 1 + 1 + 1 + 1 + 1 + 1);
  assert.is(s.after.endpoints, 2);
  assert.is(s.savedPct.clusters, Math.round((1000 * 5) / 13) / 10);
});

test.run();

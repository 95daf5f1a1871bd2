// The real filter (.wasm) on what a scoped proxy meets for destinations it does not know:
// Istio's block_all refusals (REGISTRY_ONLY), requests through the fallback (egressProxy), and,
// as a NETWORK filter, TCP/TLS connections — and the fast path that reports them in seconds.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { filterHost, request, bodyOf } from "./helpers/filter.js";

const FALLBACK = "outbound|80||meshtune-fallback.meshtune-system.svc.cluster.local";

test("block_all refusal (no cluster, route block_all) is recorded with the requested host and reported fast", () => {
  const h = filterHost({ flushIntervalMs: 10_000, fastFlushMs: 1000 });
  // Istio httproute.go buildCatchAllVirtualHost: REGISTRY_ONLY → DirectResponse 502, route "block_all", no upstream cluster.
  h.http(request("", { code: 502, host: "ratings.bookinfo:9080", destination: "10.96.3.4:9080", route: "block_all" }));
  // A local reply on another route (e.g. a fault-injection abort) teaches nothing.
  h.http(request("", { code: 503, host: "x", route: "default" }));
  assert.is(h.tickPeriodMs, 1000, "fast path: the tick shortened to fastFlushMs");
  h.tick();
  assert.is(h.callouts.length, 1, "reported after 1 s, not 10 s");
  assert.is(h.tickPeriodMs, 10_000, "the flush interval is restored");
  assert.equal(bodyOf(h).unknown, [
    {
      cluster: "BlackHoleCluster",
      dst: "10.96.3.4:9080",
      authority: "ratings.bookinfo:9080",
      sni: "",
      route: "block_all",
      count: 1,
    },
  ]);
});

test("a request through the fallback (egressProxy cluster) keeps the requested host and hurries the report", () => {
  const h = filterHost({ flushIntervalMs: 10_000 });
  h.http(request("outbound|9080||reviews.bookinfo.svc.cluster.local", { host: "reviews:9080" }));
  assert.is(h.tickPeriodMs, 10_000, "a known destination does not hurry");
  h.http(request(FALLBACK, { host: "ratings.bookinfo:9080" }));
  h.http(request(FALLBACK, { host: "ratings.bookinfo:9080" }));
  assert.is(h.tickPeriodMs, 1000);
  h.tick();
  const e = bodyOf(h).edges.find((x: any) => x.cluster === FALLBACK);
  assert.equal([e.authority, e.count], ["ratings.bookinfo:9080", 2]);
  // Slime lazyload's global-sidecar counts as a fallback too.
  h.http(request("outbound|80||global-sidecar.mesh-operator.svc.cluster.local", { host: "details:9080" }));
  assert.is(h.tickPeriodMs, 1000);
});

test("network filter: TLS edges per SNI with bytes and duration, TCP edges, Passthrough TCP; HTTP connections left to the HTTP filter", () => {
  const h = filterHost({ flushIntervalMs: 10_000 });
  // tcp_proxy to a per-service chain: the cluster is on the connection's StreamInfo.
  h.tcp({
    properties: { "xds.cluster_name": "outbound|5432||pg.db.svc.cluster.local", "upstream.address": "10.0.4.2:5432" },
    sent: [100, 50],
    received: [4000],
    ms: 20,
  });
  h.tcp({
    properties: { "xds.cluster_name": "outbound|5432||pg.db.svc.cluster.local" },
    sent: [10],
    received: [10],
    ms: 5,
  });
  h.tcp({
    properties: {
      "xds.cluster_name": "outbound|443||api.stripe.com",
      "connection.requested_server_name": "api.stripe.com",
    },
    sent: [517],
    received: [6000],
    ms: 80,
  });
  // Passthrough (gateways, or an Istio that puts network filters on the catch-all chain): the original destination and SNI.
  h.tcp({
    properties: {
      "xds.cluster_name": "PassthroughCluster",
      "upstream.address": "10.96.7.7:6379",
      "connection.requested_server_name": "",
    },
    sent: [1],
    received: [1],
  });
  // An HTTP connection: HCM owns it, no cluster on the connection.
  h.tcp({ properties: {}, sent: [300], received: [300] });
  assert.is(h.tickPeriodMs, 1000, "a Passthrough connection hurries the report");
  h.tick();
  const r = bodyOf(h);
  const pg = r.edges.find((e: any) => e.cluster.includes("pg.db"));
  assert.equal([pg.dir, pg.proto, pg.authority, pg.count, pg.bytes], ["outbound", "TCP", "", 2, { tx: 160, rx: 4010 }]);
  assert.is(pg.latency.sumUs, 25_000);
  const stripe = r.edges.find((e: any) => e.cluster.includes("stripe"));
  assert.equal([stripe.proto, stripe.authority, stripe.bytes], ["TLS", "api.stripe.com", { tx: 517, rx: 6000 }]);
  assert.is(r.edges.length, 2, "the HTTP connection adds no TCP edge");
  assert.equal(r.unknown, [{ cluster: "PassthroughCluster", dst: "10.96.7.7:6379", authority: "", sni: "", count: 1 }]);
});

test.run();

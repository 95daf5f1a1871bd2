// Report v2 timings of both ends, through the real filter on the proxy-wasm host. The attributes
// follow Envoy's expr/context.cc (response.backend_latency, request/response.total_size,
// request.method) and router.cc (x-envoy-upstream-service-time, in ms) — see filter/assembly/properties.ts.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { filterHost, request, bodyOf } from "./helpers/filter.js";
import { bucketOf } from "../controller/model/histogram.js";
import { Collector } from "../controller/collector/server.js";
import { Graph } from "../controller/model/graph.js";

const REVIEWS = "outbound|9080||reviews.bookinfo.svc.cluster.local";

test("outbound and inbound edges carry upstream time, sizes and method classes", () => {
  const h = filterHost();
  for (let i = 0; i < 8; i++)
    h.http(
      request(REVIEWS, {
        host: "reviews:9080",
        ms: 12,
        upMs: 10.5,
        method: i < 6 ? "GET" : "POST",
        reqBytes: 300,
        respBytes: 1200,
      }),
    );
  h.http(request(REVIEWS, { host: "reviews:9080", ms: 3, upMs: 2, method: "DELETE" }));
  h.http(request("inbound|9080||", { host: "productpage:9080", ms: 40, upMs: 38, method: "PUT" }));
  h.tick();
  const r = bodyOf(h);
  const out = r.edges.find((e: any) => e.cluster === REVIEWS);
  assert.is(out.count, 9);
  assert.is(out.upstream.bounds, "meshtune-v1");
  assert.is(out.upstream.buckets[bucketOf(10_500)], 8);
  assert.is(out.upstream.buckets[bucketOf(2_000)], 1);
  assert.is(out.upstream.sumUs, 8 * 10_500 + 2_000);
  assert.equal(out.methods, { idempotent: 7, other: 2 });
  assert.equal(out.bytes, { tx: 8 * 300 + 240, rx: 8 * 1200 + 610 });
  const inb = r.edges.find((e: any) => e.dir === "inbound");
  assert.is(inb.upstream.sumUs, 38_000, "inbound upstream time = the application's own time");
  assert.equal(inb.methods, { idempotent: 1, other: 0 });
});

test("without response.backend_latency the router's x-envoy-upstream-service-time (ms) is used; neither → no upstream", () => {
  const h = filterHost();
  h.http(request(REVIEWS, { host: "reviews:9080", ms: 12, upMs: null, upHeaderMs: 9 }));
  h.http(request(REVIEWS, { host: "reviews:9080", ms: 12, upMs: null }));
  h.tick();
  const e = bodyOf(h).edges[0];
  assert.is(e.count, 2);
  assert.is(e.upstream.sumUs, 9_000);
  assert.is(
    e.upstream.buckets.reduce((a: number, b: number) => a + b, 0),
    1,
    "the request with no upstream time is not counted as 0",
  );
});

test("timings: false keeps the v1 per-request cost (no upstream, sizes or methods)", () => {
  const h = filterHost({ timings: false });
  const before = h.calls.get("proxy_get_property") ?? 0;
  h.http(request(REVIEWS, { host: "reviews:9080", ms: 12 }));
  const calls = (h.calls.get("proxy_get_property") ?? 0) - before;
  h.tick();
  const e = bodyOf(h).edges[0];
  assert.not.ok(e.upstream);
  assert.not.ok(e.methods);
  assert.not.ok(e.bytes);
  const h2 = filterHost();
  const b2 = h2.calls.get("proxy_get_property") ?? 0;
  h2.http(request(REVIEWS, { host: "reviews:9080", ms: 12 }));
  assert.is(
    (h2.calls.get("proxy_get_property") ?? 0) - b2 - calls,
    4,
    "v2 timings cost 4 more property reads per request",
  );
});

test("a bad timings value is one clear error and the defaults", () => {
  const h = filterHost({ timings: "yes" } as object);
  assert.ok(
    h.logs.some((l) => /timings must be true or false/.test(l.message)),
    JSON.stringify(h.logs),
  );
});

test("the collector keeps v2 timings: upstream histogram, sizes and method classes merge per edge", () => {
  const h = filterHost();
  for (let i = 0; i < 4; i++)
    h.http(request(REVIEWS, { host: "reviews:9080", ms: 12, upMs: 10, method: i ? "GET" : "POST" }));
  h.tick();
  const g = new Graph();
  const col = new Collector(g);
  const body = new TextDecoder().decode(h.callouts[0].body);
  assert.is(col.ingest(body), null);
  assert.is(col.ingest(body), null);
  const e = [...g.nodes.get("bookinfo/productpage-v1")!.edges.values()][0];
  assert.is(e.count, 8);
  assert.is(e.timing!.upCount, 8);
  assert.is(e.timing!.upSumUs, 80_000);
  assert.equal([e.timing!.idempotent, e.timing!.other], [6, 2]);
  assert.equal([e.timing!.txBytes, e.timing!.rxBytes], [8 * 240, 8 * 610]);
});

test.run();

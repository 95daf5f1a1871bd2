import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { filterHost, request, bodyOf, PRODUCTPAGE, FILTER_WASM } from "./helpers/filter.js";
import { HostBuilder } from "./proxywasm/host.js";
import { EnvoyWorkers } from "./proxywasm/workers.js";
import { ROOT } from "./helpers/cli.js";
import { BOUNDS_US, BUCKETS, bucketOf } from "../controller/model/histogram.js";
import { Collector } from "../controller/collector/server.js";
import { Graph } from "../controller/model/graph.js";
import { generateSidecars, DEFAULT_GENERATE } from "../controller/sidecar/generate.js";

const REVIEWS = "outbound|9080||reviews.bookinfo.svc.cluster.local";
const DETAILS = "outbound|9080||details.bookinfo.svc.cluster.local";
const RATINGS_GRPC = "outbound|7070||ratings-grpc.bookinfo.svc.cluster.local";
const EGRESS = "outbound|443||istio-egressgateway.istio-system.svc.cluster.local";

function bookinfoTraffic(h: ReturnType<typeof filterHost>) {
  const statuses: number[] = [];
  const run = (x: ReturnType<typeof request>) => {
    const s = h.http(x);
    statuses.push(s.request, s.response);
  };
  for (let i = 0; i < 20; i++) run(request(REVIEWS, { host: "reviews:9080", ms: 12, code: i % 10 === 0 ? 503 : 200 }));
  for (let i = 0; i < 10; i++)
    run(request(DETAILS, { host: "details:9080", ms: 0.3, code: i === 0 ? 404 : 200, flags: i === 1 ? 0x2 : 0 }));
  for (let i = 0; i < 5; i++)
    run(request(RATINGS_GRPC, { host: "ratings-grpc:7070", proto: "HTTP/2", grpc: true, ms: 1.5 }));
  run(request("inbound|9080||", { host: "productpage:9080", ms: 40 }));
  run(request(EGRESS, { host: "api.stripe.com", ms: 120 }));
  run(request("PassthroughCluster", { host: "telemetry.example.net", upstream: "203.0.113.7:80" }));
  run(request("BlackHoleCluster", { destination: "10.50.0.9:5432", code: 502 }));
  return statuses;
}

test("latency bounds are identical in the filter and the controller", () => {
  const src = readFileSync(join(ROOT, "filter/assembly/bounds.ts"), "utf8");
  const arr = /BOUNDS_US: u64\[\] = \[([^\]]+)\]/
    .exec(src)![1]
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  assert.equal(arr, BOUNDS_US);
  assert.is(Number(/BUCKETS: i32 = (\d+)/.exec(src)![1]), BUCKETS);
});

test("Bookinfo traffic → report v2 content", () => {
  const h = filterHost({ flushIntervalMs: 5000 });
  assert.is(h.tickPeriodMs, 5000);
  const statuses = bookinfoTraffic(h);
  assert.ok(
    statuses.every((s) => s === 0),
    "every hook returns Continue",
  );
  assert.is(h.callouts.length, 0, "nothing sent before the tick");
  h.tick();
  assert.is(h.callouts.length, 1);
  const c = h.callouts[0];
  assert.is(c.upstream, "outbound|8080||meshtune-controller.meshtune-system.svc.cluster.local");
  assert.ok(c.headers.some(([k, v]) => k === ":path" && v === "/v1/reports"));
  assert.ok(c.headers.some(([k, v]) => k === "content-type" && v === "application/json"));
  const r = bodyOf(h);
  assert.is(r.v, 2);
  assert.equal(r.proxy, {
    workload: "productpage-v1",
    namespace: "bookinfo",
    pod: PRODUCTPAGE.NAME,
    node: "node-a",
    mesh: "cluster.local",
  });
  assert.ok(r.window.endMs >= r.window.startMs);
  const byCluster = Object.fromEntries(
    r.edges.map((e: any) => [e.cluster + (e.cluster === EGRESS ? "#" + e.authority : ""), e]),
  );
  const rv = byCluster[REVIEWS];
  assert.equal(
    [rv.dir, rv.authority, rv.proto, rv.count, rv.err5xx, rv.err4xx],
    ["outbound", "reviews:9080", "HTTP/1.1", 20, 2, 0],
  );
  assert.is(rv.latency.bounds, "meshtune-v1");
  assert.is(rv.latency.buckets[bucketOf(12_000)], 20);
  assert.is(rv.latency.sumUs, 240_000);
  const dt = byCluster[DETAILS];
  assert.equal([dt.count, dt.err4xx, dt.flagged], [10, 1, 1]);
  assert.is(dt.latency.buckets[bucketOf(300)], 10);
  assert.equal([byCluster[RATINGS_GRPC].proto, byCluster[RATINGS_GRPC].count], ["HTTP/2", 5]);
  assert.is(byCluster["inbound|9080||"].dir, "inbound");
  assert.is(byCluster[EGRESS + "#api.stripe.com"].count, 1);
  assert.equal(r.unknown, [
    { cluster: "PassthroughCluster", dst: "203.0.113.7:80", authority: "telemetry.example.net", sni: "", count: 1 },
    { cluster: "BlackHoleCluster", dst: "10.50.0.9:5432", authority: "", sni: "", count: 1 },
  ]);
  assert.equal(r.dropped, { edges: 0, reports: 0 });
});

test("collector turns the dispatched report into the expected Sidecar hosts", () => {
  const h = filterHost();
  bookinfoTraffic(h);
  h.tick();
  const graph = new Graph();
  const col = new Collector(graph);
  assert.is(col.ingest(new TextDecoder().decode(h.callouts[0].body)), null);
  h.respond(h.callouts[0], { status: 202 });
  const res = generateSidecars(graph, DEFAULT_GENERATE);
  assert.equal(res.sidecars[0].spec.egress[0].hosts, [
    "*/api.stripe.com",
    "bookinfo/details.bookinfo.svc.cluster.local",
    "bookinfo/ratings-grpc.bookinfo.svc.cluster.local",
    "bookinfo/reviews.bookinfo.svc.cluster.local",
    "istio-system/*", // covers istio-system/istio-egressgateway… (no duplicated-host warning)
    "meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local", // the collector stays reachable
  ]);
  assert.equal(
    res.unregistered.map((u) => `${u.kind} ${u.dst}`),
    ["blackhole 10.50.0.9:5432", "passthrough 203.0.113.7:80"],
  );
  assert.is(h.metric("meshtune_reports_sent"), 1n);
});

test("after a successful report the table starts empty", () => {
  const h = filterHost();
  h.http(request(REVIEWS, { host: "reviews:9080" }));
  h.tick();
  h.respond(h.callouts[0], { status: 202 });
  h.tick();
  assert.is(h.callouts.length, 1, "no empty report");
  h.http(request(DETAILS));
  h.tick();
  assert.equal(
    bodyOf(h).edges.map((e: any) => e.cluster),
    [DETAILS],
  );
});

test("collector down (reset/timeout): data kept, backoff, next report carries it", () => {
  const h = filterHost();
  for (let i = 0; i < 3; i++) h.http(request(REVIEWS));
  h.tick();
  h.http(request(REVIEWS)); // arrives while the report is in flight
  h.tick();
  assert.is(h.callouts.length, 1, "one report in flight at a time");
  h.fail(h.callouts[0]);
  assert.is(h.metric("meshtune_reports_failed"), 1n);
  assert.match(h.logsAt("warn").join("\n"), /report to collector failed, will retry \(no response\)/);
  h.tick(); // backing off
  assert.is(h.callouts.length, 1);
  h.tick();
  assert.is(h.callouts.length, 2);
  const r = bodyOf(h);
  assert.is(r.edges[0].count, 4, "failed report's data folded back");
  assert.is(r.dropped.reports, 1);
  h.respond(h.callouts[1], { status: 503 });
  assert.is(h.metric("meshtune_reports_failed"), 2n);
  // backoff doubles: two skipped ticks
  h.tick();
  h.tick();
  assert.is(h.callouts.length, 2);
  h.tick();
  assert.is(h.callouts.length, 3);
  assert.is(bodyOf(h).edges[0].count, 4);
});

test("collector refusal (403/400/507) is final: not resent, counted; 429 is retried", () => {
  for (const [status, resent] of [
    [403, false],
    [400, false],
    [507, false],
    [429, true],
  ] as const) {
    const h = filterHost();
    h.http(request(REVIEWS));
    h.tick();
    h.respond(h.callouts[0], { status });
    assert.match(
      h.logsAt("warn").join("\n"),
      resent ? /failed, will retry \(status 429\)/ : new RegExp(`refused, not resent \\(status ${status}\\)`),
    );
    assert.is(h.metric("meshtune_reports_refused"), resent ? 0n : 1n, `status ${status}`);
    h.http(request(DETAILS));
    for (let i = 0; i < 3; i++) h.tick();
    const clusters = bodyOf(h)
      .edges.map((e: any) => e.cluster)
      .sort();
    assert.equal(clusters, resent ? [DETAILS, REVIEWS].sort() : [DETAILS], `status ${status}`);
  }
});

test("unknown collector cluster: dispatch fails synchronously, data kept", () => {
  const h = filterHost({ collectorCluster: "outbound|1||nowhere" });
  h.clusters = (c) => c !== "outbound|1||nowhere";
  h.http(request(REVIEWS));
  h.tick();
  assert.is(h.callouts.length, 0);
  assert.is(h.metric("meshtune_reports_failed"), 1n);
  h.clusters = null;
  h.tick();
  h.tick();
  assert.is(bodyOf(h).edges[0].count, 1);
});

test("edge table overflow: bounded, dropped counted in report and metric", () => {
  const h = filterHost({ maxEdges: 3 });
  for (let i = 0; i < 5; i++) h.http(request(`outbound|80||svc-${i}.bookinfo.svc.cluster.local`));
  h.http(request("outbound|80||svc-0.bookinfo.svc.cluster.local")); // known edge still counts
  h.tick();
  const r = bodyOf(h);
  assert.is(r.edges.length, 3);
  assert.is(r.edges[0].count, 2);
  assert.is(r.dropped.edges, 2);
  assert.is(h.metric("meshtune_edges_dropped"), 2n);
});

test("bad pluginConfig: one clear error, defaults used, traffic flows", () => {
  for (const [cfg, msg] of [
    ['{"maxEdges":"lots"}', /maxEdges must be an integer/],
    ['{"flushIntervalMs": 500', /not valid JSON/],
    ['{"flushIntervalMs": 10}', /flushIntervalMs must be between 100 and 3600000/],
    ['{"colectorCluster":"x"}', /unknown pluginConfig key "colectorCluster"/],
    ["[1,2]", /not a JSON object/],
  ] as const) {
    const h = filterHost(cfg);
    const errs = h.logsAt("error");
    assert.is(errs.length, 1, `${cfg}: ${errs}`);
    assert.match(errs[0], msg);
    assert.is(h.tickPeriodMs, 10000, "default flush interval");
    assert.equal(h.http(request(REVIEWS)), { request: 0, response: 0 });
  }
  assert.is(filterHost("").logsAt("error").length, 0, "empty config is fine");
});

test("missing properties and missing identity never crash or block", () => {
  const h = filterHost({}, {});
  assert.equal(h.http({}), { request: 0, response: 0 });
  h.http(request(REVIEWS));
  h.tick();
  assert.is(h.callouts.length, 0);
  assert.match(h.logsAt("error")[0], /lacks WORKLOAD_NAME/);
});

test("workload falls back to the pod name when WORKLOAD_NAME is absent", () => {
  const h = filterHost({}, { NAMESPACE: "bookinfo", NAME: "reviews-v2-7bf8c9648f-2lcgn" });
  h.http(request(RATINGS_GRPC));
  h.tick();
  assert.is(bodyOf(h).proxy.workload, "reviews-v2-7bf8c9648f-2lcgn");
});

test("identity from xds.node.metadata on Envoy ≥ 1.33; node.metadata only on older Envoy", () => {
  for (const envoy of ["1.33", "1.36"]) {
    const h = new HostBuilder().wasmFile(FILTER_WASM).envoy(envoy).nodeMetadata(PRODUCTPAGE).build();
    h.start();
    h.http(request(REVIEWS));
    h.tick();
    assert.is(h.callouts.length, 1, `Envoy ${envoy} reports`);
    assert.is(bodyOf(h).proxy.workload, "productpage-v1");
  }
  const old = new HostBuilder().wasmFile(FILTER_WASM).envoy("1.32").nodeMetadata(PRODUCTPAGE).build();
  old.start();
  old.http(request(REVIEWS));
  old.tick();
  assert.equal(bodyOf(old).proxy, {
    workload: "productpage-v1",
    namespace: "bookinfo",
    pod: PRODUCTPAGE.NAME,
    node: "node-a",
    mesh: "cluster.local",
  });
  // Both present (a host serving both): the xds path wins.
  const both = new HostBuilder()
    .wasmFile(FILTER_WASM)
    .nodeMetadata(PRODUCTPAGE)
    .property(["node", "metadata", "WORKLOAD_NAME"], "stale")
    .build();
  both.start();
  both.http(request(REVIEWS));
  both.tick();
  assert.is(bodyOf(both).proxy.workload, "productpage-v1");
});

test("one VM per worker: each reports its own streams on its own tick; totals add up", () => {
  const w = new EnvoyWorkers(
    () => new HostBuilder().wasmFile(FILTER_WASM).nodeMetadata(PRODUCTPAGE).pluginConfig({ flushIntervalMs: 1000 }),
    2,
  );
  for (let i = 0; i < 7; i++) w.http(request(REVIEWS, { host: "reviews:9080" }));
  w.tick();
  const p = w.pending();
  assert.is(p.length, 2, "one report per worker");
  const counts = p.map(({ c }) => JSON.parse(new TextDecoder().decode(c.body)).edges[0].count).sort();
  assert.equal(counts, [3, 4]);
});

test("outbound edges keep each requested authority (VirtualService hosts routed to one cluster)", () => {
  const h = filterHost();
  h.http(request(REVIEWS, { host: "reviews:9080" }));
  h.http(request(REVIEWS, { host: "reviews.bookinfo.example.com" }));
  h.http(request(REVIEWS, { host: "reviews:9080" }));
  h.tick();
  assert.equal(
    bodyOf(h).edges.map((e: any) => `${e.authority} ${e.count}`),
    ["reviews:9080 2", "reviews.bookinfo.example.com 1"],
  );
});

test("counters: the host rejects increments ≤ 0 as Envoy does; the filter never sends one", () => {
  const h = filterHost();
  const env = h.env as Record<string, (...a: any[]) => number>;
  const id = [...h.metrics].find(([, m]) => m.name === "meshtune_reports_sent")![0];
  assert.is(env.proxy_increment_metric(id, 0n), 2);
  assert.is(env.proxy_increment_metric(id, -1n), 2);
  h.http(request(REVIEWS));
  h.tick();
  h.respond(h.callouts[0], { status: 202 });
  assert.is(h.metric("meshtune_reports_sent"), 1n);
});

test.run();

import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseText } from "../controller/accesslog/text-format.js";
import { parseJson } from "../controller/accesslog/json-format.js";
import { splitPrefix } from "../controller/accesslog/kubectl-prefix.js";
import * as L from "./fixtures/lines.js";

test("TEXT 1.9+ with SNI and route-name", () => {
  const r = parseText(L.TEXT_1_9)!;
  assert.is(r.method, "GET");
  assert.is(r.protocol, "HTTP/1.1");
  assert.is(r.code, 200);
  assert.is(r.durationMs, 12);
  assert.is(r.authority, "details:9080");
  assert.is(r.upstreamHost, "10.244.1.12:9080");
  assert.is(r.cluster, "outbound|9080||details.bookinfo.svc.cluster.local");
  assert.is(r.downstreamLocal, "10.96.12.4:9080");
  assert.is(r.sni, "");
  assert.is(r.startMs, Date.parse("2026-11-20T10:00:03.796Z"));
});

test("TEXT without trailing SNI/route fields, with flags and details", () => {
  const r = parseText(L.TEXT_NO_TRAILING)!;
  assert.is(r.code, 503);
  assert.is(r.flags, "UF");
  assert.is(r.durationMs, 3);
  assert.is(r.cluster, "outbound|9080|v2|reviews.bookinfo.svc.cluster.local");
  assert.is(r.sni, "");
});

test("pre-1.9 TEXT shape (mixer status field)", () => {
  const r = parseText(L.TEXT_LEGACY)!;
  assert.is(r.code, 418);
  assert.is(r.durationMs, 4);
  assert.is(r.authority, "httpbin:8000");
  assert.is(r.cluster, "outbound|8000||httpbin.foo.svc.cluster.local");
});

test('TCP line with "- - -"', () => {
  const r = parseText(L.TEXT_TCP)!;
  assert.is(r.method, "");
  assert.is(r.protocol, "");
  assert.is(r.code, 0);
  assert.is(r.durationMs, 5);
  assert.is(r.authority, "");
  assert.is(r.cluster, "outbound|27017||mongodb.bookinfo.svc.cluster.local");
});

test("inbound line keeps the mTLS SNI; passthrough keeps TLS SNI; blackhole has no upstream", () => {
  assert.is(parseText(L.TEXT_INBOUND)!.sni, "outbound_.9080_._.details.bookinfo.svc.cluster.local");
  const p = parseText(L.TEXT_PASSTHROUGH_TLS)!;
  assert.is(p.cluster, "PassthroughCluster");
  assert.is(p.sni, "www.googleapis.com");
  const b = parseText(L.TEXT_BLACKHOLE)!;
  assert.is(b.cluster, "BlackHoleCluster");
  assert.is(b.upstreamHost, "");
  assert.is(b.downstreamLocal, "10.50.0.9:5432");
});

test("quoted fields with spaces do not shift columns", () => {
  const line = L.TEXT_1_9.replace('"-" "Mozilla', '"203.0.113.9, 10.0.0.1" "Mozilla');
  const r = parseText(line)!;
  assert.is(r.authority, "details:9080");
  assert.is(r.cluster, "outbound|9080||details.bookinfo.svc.cluster.local");
});

test("non-access-log and truncated TEXT lines are rejected", () => {
  assert.is(parseText(L.AGENT_LINE), null);
  assert.is(parseText(L.TEXT_1_9.slice(0, 80)), null);
  assert.is(parseText('[not a time] "GET / HTTP/1.1" 200'), null);
  assert.is(parseText(""), null);
});

test("JSON: string or number values, nulls", () => {
  const r = parseJson(L.JSON_LINE)!;
  assert.is(r.code, 200);
  assert.is(r.durationMs, 19);
  assert.is(r.protocol, "HTTP/2");
  assert.is(r.sni, "");
  assert.is(r.cluster, "outbound|7070||cart.shop.svc.cluster.local");
  const n = parseJson(
    JSON.stringify({
      response_code: 503,
      duration: "7",
      upstream_cluster: "outbound|80||a.b.svc.cluster.local",
      authority: null,
      start_time: null,
    }),
  )!;
  assert.is(n.code, 503);
  assert.is(n.durationMs, 7);
  assert.is(n.authority, "");
  assert.ok(Number.isNaN(n.startMs));
});

test("JSON that is not an access-log entry returns null; truncated JSON throws", () => {
  assert.is(parseJson('{"level":"info","msg":"hello"}'), null);
  assert.is(parseJson("[1,2]"), null);
  assert.throws(() => parseJson(L.JSON_LINE.slice(0, 60)));
});

test("kubectl --prefix attribution", () => {
  const p = splitPrefix(L.prefixed("reviews-v2-7bf8c9648f-2lcgn", L.TEXT_1_9))!;
  assert.is(p.pod, "reviews-v2-7bf8c9648f-2lcgn");
  assert.is(p.container, "istio-proxy");
  assert.is(p.rest, L.TEXT_1_9);
  assert.is(splitPrefix(L.TEXT_1_9), null);
  assert.is(splitPrefix("[pod/only] x"), null);
});

test.run();

import { test } from "uvu";
import * as assert from "uvu/assert";
import { Readable } from "node:stream";
import { AccessLogLearner } from "../controller/accesslog/learner.js";
import * as L from "./fixtures/lines.js";

const opts = { defaultNamespace: "default", clusterDomain: "cluster.local" };
const feed = async (l: AccessLogLearner, lines: (string | Buffer)[]) =>
  l.learnStream(Readable.from(lines.map((x) => (typeof x === "string" ? Buffer.from(x + "\n") : x))));

test("per-pod attribution via kubectl --prefix; namespace inferred from inbound SNI", async () => {
  const l = new AccessLogLearner(opts);
  await feed(l, [
    L.prefixed("productpage-v1-6987489c74-6fgz8", L.TEXT_1_9),
    L.prefixed("details-v1-79f774bdb9-kx7lq", L.TEXT_INBOUND),
    L.prefixed("details-v1-79f774bdb9-kx7lq", L.TEXT_PASSTHROUGH_TLS),
  ]);
  const { graph, placements } = l.finish();
  assert.equal(
    placements.find((p) => p.pod === "details-v1-79f774bdb9-kx7lq"),
    {
      pod: "details-v1-79f774bdb9-kx7lq",
      namespace: "bookinfo",
      workload: "details-v1",
      how: "inferred",
      proxy: placements.find((p) => p.pod === "details-v1-79f774bdb9-kx7lq")!.proxy,
    },
  );
  // productpage has no inbound line here, but its short-name call `details:9080` reached
  // details.bookinfo: its resolv.conf search list completed it with its own namespace.
  const pp = graph.nodes.get("bookinfo/productpage-v1")!;
  assert.ok(pp, "productpage attributed");
  assert.is(placements.find((p) => p.pod.startsWith("productpage"))!.how, "inferred");
  const e = [...pp.edges.values()][0];
  assert.is(e.cluster, "outbound|9080||details.bookinfo.svc.cluster.local");
  assert.is(e.count, 1);
  assert.is(e.sumUs, 12_000);
  const d = graph.nodes.get("bookinfo/details-v1")!;
  assert.is([...d.unknown.values()][0].dst, "142.250.74.10:443");
  assert.is([...d.unknown.values()][0].proto, "TLS");
  assert.is(l.records, 3);
});

test("aggregates counts, 4xx/5xx and histogram per edge", async () => {
  const l = new AccessLogLearner({ ...opts, workload: "bookinfo/reviews-v2" });
  const ok = L.TEXT_NO_TRAILING.replace(" 503 UF ", " 200 - ");
  const notFound = L.TEXT_NO_TRAILING.replace(" 503 UF ", " 404 - ");
  await feed(l, [L.TEXT_NO_TRAILING, L.TEXT_NO_TRAILING, ok, notFound]);
  const n = l.finish().graph.nodes.get("bookinfo/reviews-v2")!;
  const e = [...n.edges.values()][0];
  assert.is(e.count, 4);
  assert.is(e.err5xx, 2);
  assert.is(e.err4xx, 1);
  assert.is(
    e.buckets.reduce((a, b) => a + b, 0),
    4,
  );
});

test("unprefixed lines without --workload are skipped as unattributed", async () => {
  const l = new AccessLogLearner(opts);
  await feed(l, [L.TEXT_1_9, L.TEXT_TCP]);
  assert.is(l.skipped.unattributed, 2);
  assert.is(l.finish().graph.nodes.size, 0);
});

test("istio-agent lines, binary garbage and truncated JSON are counted, good lines kept", async () => {
  const l = new AccessLogLearner({ ...opts, workload: "shop/cart-v1" });
  const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256));
  await feed(l, [L.AGENT_LINE, L.JSON_LINE, garbage, Buffer.from("\n"), L.TEXT_TCP, L.JSON_LINE.slice(0, 50)]);
  assert.is(l.records, 2);
  assert.is(l.skipped["malformed-json"], 1);
  assert.ok(l.skipped["not-access-log"] >= 2, `skipped ${JSON.stringify(l.skipped)}`);
  const n = l.finish().graph.nodes.get("shop/cart-v1")!;
  assert.equal([...n.edges.values()].map((e) => e.cluster).sort(), [
    "outbound|27017||mongodb.bookinfo.svc.cluster.local",
    "outbound|7070||cart.shop.svc.cluster.local",
  ]);
});

test("a 10 MB single line is a counted skip", async () => {
  const l = new AccessLogLearner({ ...opts, workload: "a/b" });
  await feed(l, [L.TEXT_1_9, "x".repeat(10 << 20), L.TEXT_TCP]);
  assert.is(l.skipped["too-long"], 1);
  assert.is(l.records, 2);
});

test("gateway pods default to istio-system", async () => {
  const l = new AccessLogLearner(opts);
  await feed(l, [L.prefixed("istio-ingressgateway-5c8d7f6b4-x9kqz", L.TEXT_1_9)]);
  assert.ok(l.finish().graph.nodes.has("istio-system/istio-ingressgateway"));
});

test.run();

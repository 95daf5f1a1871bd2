// The collector under attack, with authentication on. Callers reach it through the InboundProxy
// double (Envoy inbound: XFCC appended, 127.0.0.6 source) or directly; identities bind to pods
// held by the real controller's informers against the fake API server. Each case is one the
// hostile-input campaign of issue 10 found; each asserts the status, the counted reason, and
// that nothing reached the graph.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "node:net";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import { Collector } from "../controller/collector/server.js";
import { Graph, DEFAULT_LIMITS } from "../controller/model/graph.js";
import { MeshController } from "../controller/reconcile/controller.js";
import { LearnedStore } from "../controller/k8s/learned-store.js";
import { KubeAccessReviewer } from "../controller/k8s/access-review.js";
import { loadKubeConfig, objectApi } from "../controller/k8s/kube.js";
import { DEFAULT_SCOPE } from "../controller/sidecar/scope.js";
import { FakeApiServer } from "./k8s/fake-apiserver.js";
import { InboundProxy } from "./istio/inbound-proxy.js";
import { deploymentPod } from "./fixtures/pods.js";
import { report } from "./fixtures/report.js";

const SELF = "meshtune-system/meshtune-controller";
const fake = await new FakeApiServer().start();
fake.put("namespaces", { metadata: { name: "bookinfo" } });
fake.put("namespaces", { metadata: { name: "secure" } });
fake.put("pods", deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" }));
fake.put("pods", deploymentPod("bookinfo", "details-v1", "79f774bdb9", "kx7lq", { app: "details", version: "v1" }));
fake.put("services", {
  metadata: { name: "vault", namespace: "secure", annotations: { "networking.istio.io/exportTo": "." } },
  spec: { clusterIP: "10.0.0.9", ports: [{ port: 8200, name: "http" }] },
});
fake.put("services", {
  metadata: { name: "ratings", namespace: "bookinfo" },
  spec: { clusterIP: "10.0.0.10", ports: [{ port: 9080, name: "http" }] },
});
fake.tokens.set("agent-token", {
  username: "system:serviceaccount:meshtune-system:meshtune-agent",
  groups: ["system:serviceaccounts"],
});
const kc = loadKubeConfig({ yaml: fake.kubeconfig() });
const api = objectApi(kc);
const graph = new Graph();
const registry = new Registry();
const quiet = () => {};
const ctl = new MeshController(
  kc,
  api,
  graph,
  new LearnedStore(api, quiet),
  {
    mode: "recommend",
    minWindowMs: 1,
    retentionMs: 1e9,
    fallback: { host: "meshtune-fallback.meshtune-system.svc.cluster.local", port: 80 },
    scope: DEFAULT_SCOPE,
    defaultEnabled: false,
    dryRun: true,
    clusterDomain: "cluster.local",
  },
  quiet,
  registry,
);
await ctl.start();
const col = new Collector(graph, registry, {
  auth: {
    self: { namespace: "meshtune-system", serviceAccount: "meshtune-controller" },
    reviewer: new KubeAccessReviewer(kc),
  },
  bind: ctl.bindCaller,
  index: () => ctl.hostIndex(),
  limits: { ratePerSecond: 1000, burst: 1000 },
});
const server = await col.listen(0, "127.0.0.1");
const port = (server.address() as AddressInfo).port;
const fromReviews = await new InboundProxy({ appPort: port, self: SELF, peer: "bookinfo/bookinfo-reviews" }).start();
const plaintext = await new InboundProxy({ appPort: port, self: SELF, peer: null }).start();

const post = (base: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/v1/reports`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, text: await r.text() }));
const direct = `http://127.0.0.1:${port}`;
const snapshot = () =>
  JSON.stringify([...graph.nodes.values()].map((n) => [n.key, [...n.edges.keys()], [...n.unknown.keys()]]));
const rejected = async (reason: string) =>
  Number(
    / (\d+)$/m.exec(
      (await registry.getSingleMetricAsString("meshtune_reports_rejected_total"))
        .split("\n")
        .find((l) => l.includes(`reason="${reason}"`)) ?? " 0",
    )?.[1] ?? 0,
  );
const edge = (cluster: string, authority?: string) => ({
  dir: "outbound",
  cluster,
  ...(authority !== undefined ? { authority } : {}),
  count: 1,
});

test("identity: only the sidecar's XFCC (127.0.0.6, By=self) or a reviewed token counts; the report must be the caller's", async () => {
  const before = snapshot();
  const forged =
    "By=spiffe://cluster.local/ns/meshtune-system/sa/meshtune-controller;URI=spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews";
  const cases: [string, unknown, Record<string, string>, number, RegExp][] = [
    [direct, report(), {}, 401, /^unauthenticated: no mesh identity/],
    // Not from 127.0.0.6: a client wrote it, or the mesh runs this pod otherwise (LOCALHOST/TPROXY): refused, retryably, with the reason named.
    [direct, report(), { "x-forwarded-client-cert": forged }, 503, /^unexpected-source: .*LOCALHOST/],
    [plaintext.url, report(), { "x-forwarded-client-cert": forged }, 401, /^unauthenticated/], // plaintext: Envoy strips XFCC
    // The client's own XFCC element comes first; the proxy's (reviews) is last and wins.
    [
      fromReviews.url,
      report({ proxy: { workload: "details-v1", namespace: "bookinfo" } }),
      {
        "x-forwarded-client-cert":
          "By=spiffe://cluster.local/ns/meshtune-system/sa/meshtune-controller;URI=spiffe://cluster.local/ns/bookinfo/sa/bookinfo-details",
      },
      403,
      /^identity-mismatch: no pod of bookinfo\/details-v1 runs as service account bookinfo-reviews/,
    ],
    [
      fromReviews.url,
      report({ proxy: { workload: "reviews-v2", namespace: "secure" } }),
      {},
      403,
      /^identity-mismatch: caller bookinfo\/bookinfo-reviews may not report for namespace secure/,
    ],
    [fromReviews.url, report({ proxy: { workload: "ghost", namespace: "bookinfo" } }), {}, 503, /^unknown-workload/], // retryable: the informer may not have seen it yet
    // A forwarded-caller header counts only from another controller replica.
    [
      fromReviews.url,
      report({ proxy: { workload: "details-v1", namespace: "bookinfo" } }),
      { "x-meshtune-caller": "bookinfo/bookinfo-details" },
      403,
      /^identity-mismatch/,
    ],
    [direct, report(), { authorization: "Bearer stolen" }, 401, /^unauthenticated: bearer token rejected/],
    [direct, report(), { authorization: "Bearer agent-token" }, 403, /^identity-mismatch/], // the agent's account speaks for no bookinfo pod
  ];
  for (const [base, body, headers, status, re] of cases) {
    const r = await post(base, body, headers);
    assert.is(r.status, status, r.text);
    assert.match(r.text, re);
  }
  assert.is(snapshot(), before);
  assert.ok((await rejected("unauthenticated")) >= 3);
  assert.ok((await rejected("unexpected-source")) >= 1);
  const ok = await post(fromReviews.url, report());
  assert.is(ok.status, 202, ok.text);
});

test("forged edges (issue 10's nine and more) are refused whole, before the graph", async () => {
  const before = snapshot();
  const forged: [unknown, number, RegExp][] = [
    [edge("outbound|80||*"), 400, /^invalid-host: edge 0: wildcard host "\*" refused/],
    [edge("outbound|80||*.svc.cluster.local"), 400, /^invalid-host: .*wildcard/],
    [edge("outbound|80||*.bookinfo.svc.cluster.local"), 400, /^invalid-host: .*wildcard/],
    [edge("outbound|80||../../x"), 400, /^invalid-cluster/],
    [edge("outbound|80||x.example.com\nkind: Secret"), 400, /^invalid-cluster/],
    [edge("outbound|80||a b.example.com"), 400, /^invalid-cluster/],
    [
      edge(
        `outbound|80||${"a".repeat(60)}.${"b".repeat(60)}.${"c".repeat(60)}.${"d".repeat(60)}.${"e".repeat(60)}.${"f".repeat(60)}.${"g".repeat(60)}.${"h".repeat(60)}.com`,
      ),
      400,
      /^invalid-(host|cluster)/,
    ],
    [
      edge("outbound|8200||vault.secure.svc.cluster.local"),
      403,
      /^unreachable-host: edge 0: vault\.secure\.svc\.cluster\.local is not exported to namespace bookinfo/,
    ],
    [edge("outbound|9080||ratings.bookinfo.svc.cluster.local", "*"), 400, /^invalid-authority/],
    [edge("outbound|9080||ratings.bookinfo.svc.cluster.local", "ratings\r\nx: y"), 400, /^invalid-authority/],
    [edge("outbound|9080||ratings.bookinfo.svc.cluster.local", 'a"b'), 400, /^invalid-authority/],
    [edge("outbound|80||*.example.com"), 400, /not a known ServiceEntry host/],
  ];
  for (const [e, status, re] of forged) {
    const r = await post(fromReviews.url, report({ edges: [e], unknown: [] }));
    assert.is(r.status, status, `${JSON.stringify(e)}: ${r.text}`);
    assert.match(r.text, re);
  }
  const u = await post(
    fromReviews.url,
    report({ unknown: [{ cluster: "PassthroughCluster", dst: "evil host", count: 1 }] }),
  );
  assert.is(u.status, 400);
  assert.match(u.text, /^invalid-address/);
  assert.is(snapshot(), before, "nothing from a refused report reached the graph");
});

test("forged time: the collector's clock sets first/last seen, whatever the window says", async () => {
  const t0 = Date.now();
  const r = await post(
    fromReviews.url,
    report({
      window: { startMs: 0, endMs: 1e13 },
      edges: [edge("outbound|9080||details.bookinfo.svc.cluster.local")],
      unknown: [],
    }),
  );
  assert.is(r.status, 202, r.text);
  const e = [...graph.nodes.get("bookinfo/reviews-v2")!.edges.values()].find((x) => x.cluster.includes("details"))!;
  assert.ok(e.firstSeenMs >= t0 && e.firstSeenMs <= Date.now(), `firstSeen ${e.firstSeenMs}`);
  assert.ok(e.lastSeenMs <= Date.now(), `lastSeen ${e.lastSeenMs}`);
});

test("rate limit: 429 with Retry-After, counted; another identity is unaffected", async () => {
  const g = new Graph();
  const c = new Collector(g, new Registry(), { auth: null, limits: { ratePerSecond: 1, burst: 2 } });
  const s = await c.listen(0, "127.0.0.1");
  const u = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push((await post(u, report())).status);
  assert.equal(codes, [202, 202, 429, 429]);
  const r = await fetch(`${u}/v1/reports`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(report()),
  });
  assert.is(r.headers.get("retry-after"), "1");
  assert.match(await c.registry.getSingleMetricAsString("meshtune_reports_rejected_total"), /reason="rate-limited"} 3/);
  s.close();
});

test("caps: inbound junk never crowds out outbound; one pod cannot take a workload's share; full graph answers 507, never 202", async () => {
  const g = new Graph({ ...DEFAULT_LIMITS, maxOutboundPerWorkload: 10, maxInboundPerWorkload: 4, sourceShare: 0.5 });
  const c = new Collector(g, new Registry(), { auth: null, limits: { ratePerSecond: 1e6, burst: 1e6 } });
  const inbound = Array.from({ length: 20 }, (_, i) => ({
    dir: "inbound",
    cluster: `inbound|${9000 + i}||`,
    count: 1,
  }));
  const r1 = c.ingest(JSON.stringify(report({ edges: inbound, unknown: [] })));
  // Per-source fairness applies outbound only: a workload's inbound edges are its own ports.
  assert.is(r1?.[0], 507);
  assert.match(r1![2], /merged 4, dropped 16 \(inbound-cap 16\)/);
  const out = (pod: string, n: number, from = 0) =>
    JSON.stringify(
      report({
        proxy: { workload: "reviews-v2", namespace: "bookinfo", pod },
        unknown: [],
        edges: Array.from({ length: n }, (_, i) => edge(`outbound|80||s${from + i}.bookinfo.svc.cluster.local`)),
      }),
    );
  const r2 = c.ingest(out("pod-a", 8));
  assert.match(r2![2], /merged 5, dropped 3 \(source-share 3\)/, "one pod gets half of the outbound cap");
  assert.is(c.ingest(out("pod-b", 5, 100)), null, "another pod of the workload still learns");
  const n = g.nodes.get("bookinfo/reviews-v2")!;
  assert.is(n.outbound, 10);
  assert.is(n.inbound, 4);
  assert.match(await c.registry.getSingleMetricAsString("meshtune_edges_dropped_total"), /reason="inbound-cap"} 16/);
});

test("a full graph evicts workloads no pod backs instead of refusing real ones", () => {
  const g = new Graph({ ...DEFAULT_LIMITS, maxWorkloads: 1000 });
  const real = new Set(["bookinfo/reviews-v2"]);
  g.backed = (k) => real.has(k);
  for (let i = 0; i < 5000; i++) g.node("fake", `w${i}`);
  assert.is(g.dropped["workload-cap"], 4000, "unbacked newcomers never displace anyone: refused and counted");
  assert.ok(g.node("bookinfo", "reviews-v2"), "a backed workload always gets in");
  assert.is(g.evicted.unbacked, 100, "a tenth of the cap evicted at once");
  assert.is(g.nodes.size <= 1000, true);
  g.backed = () => true; // everything backed and full: refused, counted
  for (let i = 0; g.nodes.size < 1000; i++) g.node("real", `r${i}`);
  assert.is(g.node("real", "one-more"), null);
  assert.is(g.dropped["workload-cap"], 4001);
});

test("memory: edge floods stay within the total cap (bounded heap), each excess counted", () => {
  const g = new Graph({ ...DEFAULT_LIMITS, maxEdgesTotal: 50_000 });
  const c = new Collector(g, new Registry(), { auth: null });
  const before = process.memoryUsage().heapUsed;
  let partial = 0;
  for (let r = 0; r < 40; r++) {
    const edges = Array.from({ length: 5000 }, (_, i) => edge(`outbound|80||h${r}-${i}.flood.svc.cluster.local`));
    const res = c.ingest(
      JSON.stringify(report({ proxy: { workload: `w${r}`, namespace: "flood", pod: `p${r}` }, edges, unknown: [] })),
    );
    if (res) {
      assert.is(res[0], 507);
      partial++;
    }
  }
  assert.is(g.size, 50_000);
  assert.ok(partial >= 30);
  // One pod gets half of a workload's outbound cap; at the total cap the biggest holder gives way
  // (never a freeze: issue 23 item 16), so the rest is evicted workloads, not refusals.
  assert.ok(g.dropped["source-share"] > 0 && g.evicted.fairness >= 10, JSON.stringify([g.dropped, g.evicted]));
  const grew = (process.memoryUsage().heapUsed - before) / 1e6;
  assert.ok(grew < 200, `heap grew ${grew.toFixed(0)} MB for 50k edges`);
});

test("slowloris, endless chunked bodies and a connection flood are cut off and counted; the server keeps serving", async () => {
  const c = new Collector(new Graph(), new Registry(), {
    auth: null,
    limits: {
      headersTimeoutMs: 1000,
      requestTimeoutMs: 1500,
      maxConnections: 300,
      maxInflightBytes: 8 << 20,
      ratePerSecond: 1e6,
      burst: 1e6,
    },
  });
  const s = await c.listen(0, "127.0.0.1");
  const p = (s.address() as AddressInfo).port;
  const open = (payload: string) =>
    new Promise<{ closedAt: number; text: string }>((resolve) => {
      const sock = connect(p, "127.0.0.1", () => sock.write(payload));
      let text = "";
      sock.on("data", (d) => (text += d));
      sock.on("error", () => {});
      sock.on("close", () => resolve({ closedAt: Date.now(), text }));
    });
  const t0 = Date.now();
  const slow = Array.from({ length: 100 }, () => open("POST /v1/reports HTTP/1.1\r\nhost: x\r\n")); // headers never finish
  const chunked = Array.from({ length: 50 }, () =>
    open(
      "POST /v1/reports HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n[1,2,\r\n",
    ),
  ); // body never ends
  const all = await Promise.all([...slow, ...chunked]);
  const took = Math.max(...all.map((x) => x.closedAt)) - t0;
  assert.ok(took < 6000, `all closed after ${took} ms`);
  const firstLines = all.map((x) => x.text.split("\r\n")[0] || "(closed)");
  // Headers that never end: 408. Endless bodies: 408 once the request timeout hits, or 503 busy
  // at once when the in-flight budget (8 MB here, 1 MB reserved per chunked body) is spent.
  assert.ok(
    firstLines.every((l) => /^HTTP\/1\.1 (408|503) /.test(l)) && firstLines.filter((l) => /408/.test(l)).length >= 100,
    JSON.stringify(
      Object.entries(firstLines.reduce((m: Record<string, number>, l) => ({ ...m, [l]: (m[l] ?? 0) + 1 }), {})),
    ),
  );
  const ok = await post(`http://127.0.0.1:${p}`, report());
  assert.is(ok.status, 202, "still serving");
  assert.match(await c.registry.getSingleMetricAsString("meshtune_reports_rejected_total"), /reason="timeout"} 1\d\d/);
  // 1000 concurrent valid reports: every one gets an answer (202, or 503 busy / a closed connection), none hangs.
  const flood = await Promise.all(
    Array.from({ length: 1000 }, () =>
      post(`http://127.0.0.1:${p}`, report()).then(
        (r) => r.status,
        () => 0,
      ),
    ),
  );
  assert.ok(
    flood.every((st) => st === 202 || st === 503 || st === 0),
    JSON.stringify([...new Set(flood)]),
  );
  const tally = JSON.stringify(flood.reduce((m: Record<number, number>, st) => ({ ...m, [st]: (m[st] ?? 0) + 1 }), {}));
  assert.ok(flood.filter((st) => st === 202).length >= 200, tally);
  assert.match(
    await c.registry.getSingleMetricAsString("meshtune_reports_rejected_total"),
    /reason="connections"} \d+/,
    "connections over the cap are counted",
  );
  assert.is((await post(`http://127.0.0.1:${p}`, report())).status, 202, "serving after the flood");
  s.close();
});

test("large bodies that never finish: the in-flight budget answers 503 busy instead of buffering", async () => {
  const c = new Collector(new Graph(), new Registry(), {
    auth: null,
    limits: { maxInflightBytes: 4 << 20, requestTimeoutMs: 2000, ratePerSecond: 1e6, burst: 1e6 },
  });
  const s = await c.listen(0, "127.0.0.1");
  const p = (s.address() as AddressInfo).port;
  const rss0 = process.memoryUsage().rss;
  const answers = await Promise.all(
    Array.from(
      { length: 40 },
      () =>
        new Promise<string>((resolve) => {
          const sock = connect(p, "127.0.0.1", () => {
            sock.write(
              `POST /v1/reports HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${1 << 20}\r\n\r\n`,
            );
            sock.write(Buffer.alloc(512 << 10, 0x20));
          });
          let t = "";
          sock.on("data", (d) => (t += d));
          sock.on("error", () => {});
          sock.on("close", () => resolve(t.split("\r\n")[0]));
        }),
    ),
  );
  assert.ok(answers.filter((a) => /503/.test(a)).length >= 36, answers.join(","));
  assert.ok((process.memoryUsage().rss - rss0) / 1e6 < 100);
  assert.match(await c.registry.getSingleMetricAsString("meshtune_reports_rejected_total"), /reason="busy"/);
  s.close();
});

test.after(async () => {
  server.close();
  await fromReviews.stop();
  await plaintext.stop();
  await ctl.stop();
  await fake.stop();
});
test.run();

// Issue 23, the collector side: each case is an attack that succeeded on f898273 (202, or a
// resource taken from everyone) and is refused now. Real collector + controller informers against
// the fake API server; callers through the InboundProxy double (Envoy's XFCC handling, cited
// there) or directly with tokens. Item numbers refer to issue 23.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { connect, type AddressInfo } from "node:net";
import { Registry } from "prom-client";
import { Collector } from "../../controller/collector/server.js";
import { xfccPeer } from "../../controller/collector/caller.js";
import { Graph, DEFAULT_LIMITS } from "../../controller/model/graph.js";
import { KubeAccessReviewer } from "../../controller/k8s/access-review.js";
import { FakeApiServer } from "../k8s/fake-apiserver.js";
import { InboundProxy } from "../istio/inbound-proxy.js";
import { deploymentPod } from "../fixtures/pods.js";
import { report } from "../fixtures/report.js";
import { inProcessController } from "../helpers/in-process-controller.js";

const SELF = { namespace: "meshtune-system", serviceAccount: "meshtune-controller" };
const CTL = "spiffe://cluster.local/ns/meshtune-system/sa/meshtune-controller";
const fake = await new FakeApiServer().start();
fake.put("namespaces", { metadata: { name: "bookinfo" } });
fake.put("namespaces", { metadata: { name: "secure" } });
fake.put("pods", deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" }));
fake.put("pods", deploymentPod("bookinfo", "details-v1", "79f774bdb9", "kx7lq", { app: "details", version: "v1" }));
const agentPod = deploymentPod("bookinfo", "ratings-v1", "5d8c9b8d6f", "q2x9z", { app: "ratings", version: "v1" });
(agentPod as any).spec.nodeName = "node-a";
fake.put("pods", agentPod);
fake.put("services", {
  metadata: { name: "vault", namespace: "secure", annotations: { "networking.istio.io/exportTo": "." } },
  spec: { clusterIP: "10.0.0.9", ports: [{ port: 8200, name: "http" }] },
});
fake.put("services", {
  metadata: { name: "ratings", namespace: "bookinfo" },
  spec: { clusterIP: "10.0.0.10", ports: [{ port: 9080, name: "http" }] },
});
const agentUser = (node: string) => ({
  username: "system:serviceaccount:meshtune-system:meshtune-node",
  groups: ["system:serviceaccounts"],
  extra: { "authentication.kubernetes.io/node-name": [node] },
});
fake.tokens.set("agent-a", agentUser("node-a"));
fake.tokens.set("agent-b", agentUser("node-b"));
fake.tokens.set("reviews-token", {
  username: "system:serviceaccount:bookinfo:bookinfo-reviews",
  groups: ["system:serviceaccounts"],
});
fake.tokens.set("details-token", {
  username: "system:serviceaccount:bookinfo:bookinfo-details",
  groups: ["system:serviceaccounts"],
});
const { ctl, kc, graph, registry } = inProcessController(fake.kubeconfig(), { defaultEnabled: false });
await ctl.start();
const logs: string[] = [];
const col = new Collector(graph, registry, {
  auth: { self: SELF, reviewer: new KubeAccessReviewer(kc) },
  bind: ctl.bindCaller,
  index: () => ctl.hostIndex(),
  agentIdentity: { namespace: "meshtune-system", serviceAccount: "meshtune-node" },
  mergeAgent: (r) => ctl.mergeAgent(r),
  limits: { ratePerSecond: 1000, burst: 1000, maxInflightPerIdentity: 2 << 20 },
  log: (_l, m, f) => logs.push(`${m} ${JSON.stringify(f)}`),
});
const server = await col.listen(0, "127.0.0.1");
const port = (server.address() as AddressInfo).port;
const direct = `http://127.0.0.1:${port}`;
const fromReviews = await new InboundProxy({
  appPort: port,
  self: "meshtune-system/meshtune-controller",
  peer: "bookinfo/bookinfo-reviews",
}).start();
const sanitizing = await new InboundProxy({
  appPort: port,
  self: "meshtune-system/meshtune-controller",
  peer: "bookinfo/bookinfo-reviews",
  forwardedClientCert: "SANITIZE_SET",
}).start();

const post = (base: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/v1/reports`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, text: await r.text() }));
const snapshot = () =>
  JSON.stringify([...graph.nodes.values()].map((n) => [n.key, [...n.edges.keys()], [...n.unknown.keys()]]));
const counted = async (name: string, reason: string) =>
  Number(
    / (\d+)$/.exec(
      (await registry.getSingleMetricAsString(name)).split("\n").find((l) => l.includes(`reason="${reason}"`)) ?? " 0",
    )?.[1] ?? 0,
  );
const detailsReport = () =>
  report({ proxy: { workload: "details-v1", namespace: "bookinfo", pod: "details-v1-79f774bdb9-kx7lq" } });

test("item 1: XFCC forgery by an unterminated quote, and its variants, never changes who the caller is", async () => {
  const before = snapshot();
  const victim = "URI=spiffe://cluster.local/ns/bookinfo/sa/bookinfo-details";
  const hash = "a".repeat(64);
  const forgeries = [
    `By=${CTL};${victim};X="`, // the campaign's: swallows the sidecar's element in a quote-aware split
    `By=${CTL};Hash=${hash};Subject="";${victim};X="\\`, // escaped quote at the end
    `By=${CTL};Hash=${hash};Subject="";${victim}`, // a complete Envoy-shaped element before the real one
    `By=${CTL};Hash=${hash};Subject="${"x".repeat(9000)}";${victim},"`, // padding and a stray quote
    `${victim};By=${CTL},By=${CTL};Hash=${hash};Subject="\\",${victim}`, // nested fake elements
  ];
  for (const xfcc of forgeries) {
    for (const via of [fromReviews, sanitizing]) {
      const r = await post(via.url, detailsReport(), { "x-forwarded-client-cert": xfcc });
      assert.is(r.status, 403, `${xfcc.slice(0, 60)}: ${r.text}`);
      assert.match(
        r.text,
        /^identity-mismatch: pod bookinfo\/details-v1-79f774bdb9-kx7lq is not a pod of bookinfo\/details-v1 running as bookinfo-reviews/,
      );
    }
  }
  assert.is(snapshot(), before, "nothing from a forged report reached the graph");
  // The parse itself: only Envoy's exact element at the end names the peer.
  const real = `By=${CTL};Hash=${"0".repeat(64)};Subject="";URI=spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews`;
  assert.equal(xfccPeer(`${forgeries[0]},${real}`, SELF), {
    namespace: "bookinfo",
    serviceAccount: "bookinfo-reviews",
  });
  for (const bad of [
    `By=${CTL};Hash=abc;Subject="";URI=spiffe://cluster.local/ns/bookinfo/sa/x`, // not a SHA-256 hex
    `By=${CTL};URI=spiffe://cluster.local/ns/bookinfo/sa/x`, // not Envoy's shape
    `By=spiffe://cluster.local/ns/bookinfo/sa/evil;Hash=${"0".repeat(64)};Subject="";URI=spiffe://cluster.local/ns/bookinfo/sa/x`, // not By=self
    `${real};X="`, // something after Envoy's element: Envoy would not have written it last
  ])
    assert.type(xfccPeer(bad, SELF), "string", bad);
  assert.type(xfccPeer([real, real], SELF), "string", "two headers: refused");
  const ok = await post(sanitizing.url, report());
  assert.is(ok.status, 202, ok.text);
});

test("item 3: a sidecar header from an unexpected source is refused retryably, counted, logged with the likely setting", async () => {
  const r = await post(direct, report(), {
    "x-forwarded-client-cert": `By=${CTL};Hash=${"0".repeat(64)};Subject="";URI=spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews`,
  });
  assert.is(r.status, 503);
  assert.match(r.text, /^unexpected-source: .*127\.0\.0\.1.*inboundTrafficPolicy LOCALHOST/);
  assert.ok((await counted("meshtune_reports_rejected_total", "unexpected-source")) >= 1);
  assert.ok(logs.some((l) => /do not come from this pod's sidecar bind address/.test(l)));
  assert.match(col.unexpectedSource ?? "", /LOCALHOST/);
});

test("item 22: unique junk tokens cost the API server a bounded number of TokenReviews; cached tokens are free", async () => {
  const before = fake.tokenReviews;
  const t0 = Date.now();
  const answers = await Promise.all(
    Array.from({ length: 200 }, (_, i) => post(direct, report(), { authorization: `Bearer junk-${i}` })),
  );
  // The gate's bound: a burst of 10, then 5/s per source, over however long the 200 took (a busy
  // machine stretches it; the bound stretches with it — no wall-clock assumption).
  const bound = 10 + Math.ceil(((Date.now() - t0) / 1000) * 5) + 1;
  const reviews = fake.tokenReviews - before;
  assert.ok(reviews <= bound, `${reviews} TokenReviews for 200 junk tokens from one source (bound ${bound})`);
  assert.ok(answers.filter((a) => a.status === 429).length >= 200 - bound);
  assert.ok(answers.every((a) => a.status === 429 || a.status === 401));
  // A known token, reviewed once, is served from the cache even while its source is throttled.
  await new Promise((r) => setTimeout(r, 1100));
  assert.is((await post(direct, report(), { authorization: "Bearer reviews-token" })).status, 202);
  const again = await Promise.all(
    Array.from({ length: 20 }, () => post(direct, report(), { authorization: "Bearer reviews-token" })),
  );
  assert.ok(again.every((a) => a.status === 202));
});

test("item 21: one identity's slow bodies use its own in-flight share; others keep reporting", async () => {
  // details sends bodies that never finish, each declaring 1 MiB: its 2 MiB share is spent after two.
  const held: ReturnType<typeof connect>[] = [];
  for (let i = 0; i < 4; i++) {
    const s = connect(port, "127.0.0.1");
    s.on("error", () => {});
    s.write(
      `POST /v1/reports HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer details-token\r\ncontent-length: ${1 << 20}\r\n\r\n{`,
    );
    held.push(s);
  }
  await new Promise((r) => setTimeout(r, 300));
  const mine = await post(direct, detailsReport(), { authorization: "Bearer details-token" });
  assert.is(mine.status, 503);
  assert.match(mine.text, /^busy: bookinfo\/bookinfo-details has \d+ bytes in flight already/);
  const other = await post(direct, report(), { authorization: "Bearer reviews-token" });
  assert.is(other.status, 202, other.text);
  for (const s of held) s.destroy();
});

test("item 23: an agent's node comes from its bound token, never from the body", async () => {
  const body = (node: string) =>
    JSON.stringify({
      v: 2,
      kind: "agent",
      node,
      pods: [{ namespace: "bookinfo", name: agentPod.metadata!.name!, edges: [{ dst: "10.0.0.10:9080", count: 1 }] }],
    });
  const lie = await post(direct, body("node-a"), { authorization: "Bearer agent-b" });
  assert.is(lie.status, 403);
  assert.match(lie.text, /^identity-mismatch: the agent's token is bound to node node-b, not node-a/);
  const ok = await post(direct, body("node-a"), { authorization: "Bearer agent-a" });
  assert.is(ok.status, 202, ok.text);
});

test("item 24: a host reached through an edge's authority, or a blocked request's authority/SNI, must be exported to the caller", async () => {
  const before = snapshot();
  const cases = [
    report({ edges: [{ dir: "outbound", cluster: "PassthroughCluster", authority: "vault.secure", count: 1 }] }),
    report({
      edges: [
        {
          dir: "outbound",
          cluster: "outbound|9080||ratings.bookinfo.svc.cluster.local",
          authority: "vault.secure:8200",
          count: 1,
        },
      ],
    }),
    report({
      edges: [],
      unknown: [
        { cluster: "BlackHoleCluster", dst: "10.0.0.9:8200", authority: "vault.secure.svc.cluster.local", count: 1 },
      ],
    }),
    report({
      edges: [],
      unknown: [{ cluster: "PassthroughCluster", dst: "10.0.0.9:8200", sni: "vault.secure.svc", count: 1 }],
    }),
  ];
  for (const c of cases) {
    const r = await post(fromReviews.url, c);
    assert.is(r.status, 403, r.text);
    assert.match(
      r.text,
      /^unreachable-host: .*vault\.secure\.svc\.cluster\.local is not exported to namespace bookinfo/,
    );
  }
  assert.is(snapshot(), before);
});

test("item 16: a flood never freezes learning: other namespaces' new hosts get in, deleted pods' entries go first, invented pod names are refused", async () => {
  const g = new Graph({ ...DEFAULT_LIMITS, maxEdgesTotal: 20_000 });
  const c = new Collector(g, new Registry(), { auth: null });
  const flood = (r: number) =>
    JSON.stringify(
      report({
        proxy: { workload: `w${r}`, namespace: "evil", pod: `p${r}` },
        unknown: [],
        edges: Array.from({ length: 5000 }, (_, i) => ({
          dir: "outbound",
          cluster: `outbound|80||h${r}-${i}.evil.svc.cluster.local`,
          count: 1,
        })),
      }),
    );
  for (let r = 0; r < 12; r++) c.ingest(flood(r));
  assert.is(g.size, 20_000, "the flood filled the graph");
  const legit = (host: string) =>
    JSON.stringify(
      report({
        unknown: [],
        edges: [{ dir: "outbound", cluster: `outbound|9080||${host}.bookinfo.svc.cluster.local`, count: 1 }],
      }),
    );
  assert.is(c.ingest(legit("ratings")), null, "another namespace's new host is accepted, not 507");
  assert.ok(g.nodes.get("bookinfo/reviews-v2")?.edges.size, "and it is in the graph");
  assert.ok(g.evicted.fairness > 0);
  // The flooding pods are deleted: their entries are the first to go.
  g.backed = (key) => !key.startsWith("evil/");
  const many = (workload: string, pod: string) =>
    JSON.stringify(
      report({
        proxy: { workload, namespace: "bookinfo", pod },
        unknown: [],
        edges: Array.from({ length: 2400 }, (_, i) => ({
          dir: "outbound",
          cluster: `outbound|80||${workload}-${i}.bookinfo.svc.cluster.local`,
          count: 1,
        })),
      }),
    );
  assert.is(c.ingest(many("details-v1", "d")), null);
  assert.is(c.ingest(many("productpage-v1", "p")), null);
  assert.ok(g.evicted.unbacked > 0, JSON.stringify(g.evicted));
  // An invented pod name would buy a fresh per-pod share: refused against the informer.
  const invented = await post(
    fromReviews.url,
    report({ proxy: { workload: "reviews-v2", namespace: "bookinfo", pod: "reviews-v2-7bf8c9648f-zzzzz" } }),
  );
  assert.is(invented.status, 503);
  assert.match(invented.text, /^unknown-workload: no pod bookinfo\/reviews-v2-7bf8c9648f-zzzzz known yet/);
  const otherPod = await post(
    fromReviews.url,
    report({ proxy: { workload: "reviews-v2", namespace: "bookinfo", pod: "details-v1-79f774bdb9-kx7lq" } }),
  );
  assert.is(otherPod.status, 403);
  assert.match(otherPod.text, /is not a pod of bookinfo\/reviews-v2/);
});

test.after(async () => {
  await fromReviews.stop();
  await sanitizing.stop();
  server.closeAllConnections();
  server.close();
  await ctl.stop();
  await fake.stop();
});

test.run();

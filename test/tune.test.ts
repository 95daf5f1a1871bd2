// Traffic-aware recommendations rule by rule, on graphs with known traffic: timeouts consistent
// along a call chain, retries by method class with a budget by Istio version, outlier detection
// by endpoints and error rate, pools by concurrency, ownership of user objects, Istio schema
// validation of every emitted object; sidecar resources by the cost model, QoS and calibration;
// discovery scope; CryptoMB by node capability.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Graph } from "../controller/model/graph.js";
import { tune, type TuneInputs } from "../controller/tune/tune.js";
import { planTimeouts } from "../controller/tune/rules.js";
import { traffic } from "../controller/tune/traffic.js";
import { validateRule } from "../controller/tune/rule-validate.js";
import { parseDur, dur } from "../controller/tune/duration.js";
import { qosOf, recommendResources } from "../controller/tune/resources.js";
import { recommendCryptoMb } from "../controller/tune/cryptomb.js";
import { parseCatalog } from "../controller/sidecar/catalog.js";
import { HostIndex } from "../controller/istio/hosts.js";

const D = "cluster.local";
const fq = (s: string) => `${s}.shop.svc.${D}`;
const T0 = Date.parse("2026-11-20T10:00:00Z");

/** `n` requests from→to with latencies spread evenly up to maxMs (so p99 ≈ 0.99 × maxMs). */
function calls(
  g: Graph,
  from: string,
  to: string,
  n: number,
  maxMs: number,
  o: { method?: string | ((i: number) => string); err5xx?: number } = {},
) {
  const a = g.node("shop", from)!,
    b = g.node("shop", to)!;
  for (let i = 0; i < n; i++) {
    const us = Math.round(((i + 1) / n) * maxMs * 1000),
      at = T0 + Math.round((i * 1_200_000) / n); // 20 minutes: above the evidence window
    const m = typeof o.method === "function" ? o.method(i) : (o.method ?? "GET");
    const code = i < (o.err5xx ?? 0) ? 503 : 200;
    g.observe(
      a,
      { dir: "outbound", cluster: `outbound|8080||${fq(to)}`, authority: `${to}:8080`, proto: "HTTP/1.1" },
      code,
      us,
      at,
      m,
    );
    g.observe(
      b,
      { dir: "inbound", cluster: "inbound|8080||", authority: `${to}:8080`, proto: "HTTP/1.1" },
      code,
      us,
      at,
    );
  }
}

function catalog(eps: Record<string, number>, extra: object[] = []) {
  const items: object[] = [];
  for (const [s, n] of Object.entries(eps)) {
    items.push({
      kind: "Service",
      metadata: { name: s, namespace: "shop" },
      spec: { clusterIP: "10.0.0.1", ports: [{ port: 8080, name: "http" }] },
    });
    items.push({
      kind: "Endpoints",
      metadata: { name: s, namespace: "shop" },
      subsets: [{ addresses: Array.from({ length: n }, (_, i) => ({ ip: `10.1.0.${i + 1}` })) }],
    });
  }
  items.push(...extra);
  return { items: items as Record<string, unknown>[], services: parseCatalog({ items }, D) };
}

function run(g: Graph, eps: Record<string, number>, o: Partial<TuneInputs> = {}, extra: object[] = []) {
  const c = catalog(eps, extra);
  return tune({
    graph: g,
    services: c.services,
    items: c.items,
    savings: null,
    domain: D,
    istioVersion: [1, 27],
    minRequests: 100,
    ...o,
  });
}

test("chain A→B→C: B's timeout covers C's retries, where a per-edge timeout would cut B off first", () => {
  const g = new Graph();
  calls(g, "a", "b", 1000, 500); // B answers within 500 ms…
  calls(g, "b", "c", 1000, 400); // …but C may take 400 ms, and is retried (idempotent)
  const t = run(g, { b: 3, c: 3 });
  const vs = (h: string) => t.rules.find((r) => r.host === fq(h))!.virtualService!;
  const c = vs("c").spec.http[0],
    b = vs("b").spec.http[0];
  const cTotal = parseDur(c.timeout),
    cTry = parseDur(c.retries.perTryTimeout);
  assert.is(c.retries.attempts, 2);
  assert.is(cTotal, cTry * 3, "C: per-try × (1 + retries)");
  const naive = 2 * 0.99 * 500; // what B's own tail alone would give
  assert.ok(naive < cTotal, "the trap is real: a naive per-edge timeout on A→B is shorter than C's worst case");
  assert.ok(
    parseDur(b.retries.perTryTimeout) >= cTotal,
    `B per-try ${b.retries.perTryTimeout} ≥ C's whole timeout ${c.timeout}`,
  );
  assert.ok(parseDur(b.timeout) >= parseDur(b.retries.perTryTimeout) * 3);
  const why = t.rules.find((r) => r.host === fq("b"))!.rationale.find((w) => w.field === "http[0].timeout")!.why;
  assert.match(why, /cover its callee c\.shop\.svc\.cluster\.local's whole timeout/);
});

test("a cycle A→B→A terminates and still yields timeouts", () => {
  const g = new Graph();
  calls(g, "a", "b", 200, 100);
  calls(g, "b", "a", 200, 100);
  const p = planTimeouts(traffic(g, new HostIndex([]), D), {
    domain: D,
    istioVersion: [1, 27],
    minRequests: 100,
    userVirtualServices: new Set(),
    userDestinationRules: new Set(),
    endpoints: () => null,
  });
  assert.ok(p.get(fq("a"))!.totalMs > 0 && p.get(fq("b"))!.totalMs > 0);
});

test("retries: idempotent-only → full retryOn with perTryTimeout; any POST → only connect-failure/refused-stream; methods unknown → Istio default kept", () => {
  const g = new Graph();
  calls(g, "a", "get", 200, 50);
  calls(g, "a", "post", 200, 50, { method: (i) => (i % 10 ? "GET" : "POST") });
  const a = g.node("shop", "a")!;
  for (let i = 0; i < 200; i++)
    g.observe(
      a,
      { dir: "outbound", cluster: `outbound|8080||${fq("nomethod")}`, authority: "", proto: "HTTP/1.1" },
      200,
      1000,
      T0 + i,
    );
  const t = run(g, { get: 2, post: 2, nomethod: 2 });
  const r = (h: string) => t.rules.find((x) => x.host === fq(h))!;
  assert.match(r("get").virtualService!.spec.http[0].retries.retryOn, /5|reset/);
  assert.equal(r("post").virtualService!.spec.http[0].retries, {
    attempts: 2,
    retryOn: "connect-failure,refused-stream",
  });
  assert.not.ok(r("nomethod").virtualService?.spec.http[0].retries);
  assert.ok(r("nomethod").skipped.some((s) => /methods not observed/.test(s)));
});

test("retry budget: DestinationRule retryBudget on 1.27+, connectionPool.http.maxRetries on 1.25 (no retryBudget in its CRD)", () => {
  const g = new Graph();
  calls(g, "a", "b", 500, 50);
  const dr = (v: [number, number]) =>
    run(g, { b: 2 }, { istioVersion: v }).rules[0].destinationRule!.spec.trafficPolicy;
  assert.equal(dr([1, 27]).retryBudget, { percent: 20, minRetryConcurrency: 3 });
  assert.not.ok(dr([1, 27]).connectionPool.http.maxRetries);
  assert.not.ok(dr([1, 25]).retryBudget);
  assert.ok(dr([1, 25]).connectionPool.http.maxRetries >= 3);
});

test("outlier detection: none for 1 endpoint; threshold rises with the background 5xx rate; never ejects the last endpoint", () => {
  const g = new Graph();
  calls(g, "a", "one", 500, 20);
  calls(g, "a", "clean", 500, 20);
  calls(g, "a", "noisy", 1000, 20, { err5xx: 300 });
  const t = run(g, { one: 1, clean: 2, noisy: 4 });
  const od = (h: string) => t.rules.find((x) => x.host === fq(h))!.destinationRule?.spec.trafficPolicy.outlierDetection;
  assert.not.ok(od("one"));
  assert.ok(t.rules.find((x) => x.host === fq("one"))!.skipped.some((s) => /1 endpoint/.test(s)));
  assert.equal(od("clean"), {
    consecutive5xxErrors: 5,
    interval: "10s",
    baseEjectionTime: "30s",
    maxEjectionPercent: 50,
  });
  assert.ok(od("noisy").consecutive5xxErrors > 5, "30 % background 5xx: 5 in a row happen by chance");
  assert.ok(Math.pow(0.3, od("noisy").consecutive5xxErrors) < 1e-4);
  assert.is(od("noisy").maxEjectionPercent, 50);
});

test("pools from concurrency; too few requests: no timeout, said why; TCP: no route timeout", () => {
  const g = new Graph();
  const a = g.node("shop", "a")!;
  // 20 000 requests over 20 min at p99 ≈ 1 s: λ ≈ 16.7/s, L = λ·W ≈ 16.7 → limit 10× ≈ 170.
  for (let i = 0; i < 20000; i++)
    g.observe(
      a,
      { dir: "outbound", cluster: `outbound|8080||${fq("busy")}`, authority: "", proto: "HTTP/1.1" },
      200,
      Math.round(((i % 100) + 1) * 10_000),
      T0 + i * 60,
      "GET",
    );
  calls(g, "a", "rare", 20, 10);
  for (let i = 0; i < 300; i++)
    g.observe(
      a,
      { dir: "outbound", cluster: `outbound|5432||${fq("db")}`, authority: "", proto: "TCP" },
      0,
      1000,
      T0 + i,
    );
  const t = run(g, { busy: 3, rare: 2, db: 2 });
  const busy = t.rules.find((x) => x.host === fq("busy"))!.destinationRule!.spec.trafficPolicy.connectionPool.http;
  assert.ok(busy.http2MaxRequests > 150 && busy.http2MaxRequests < 200, String(busy.http2MaxRequests));
  const poolWhy = t.rules
    .find((x) => x.host === fq("busy"))!
    .rationale.find((w) => w.field.endsWith("connectionPool.http"))!;
  assert.match(poolWhy.why, /Little's law L = λ·W at p99/);
  assert.match(poolWhy.why, /not a peak/);
  const rare = t.rules.find((x) => x.host === fq("rare"))!;
  assert.not.ok(rare.virtualService?.spec.http[0].timeout);
  assert.ok(rare.skipped.some((s) => /20 requests < 100/.test(s)));
  assert.ok(t.rules.find((x) => x.host === fq("db"))!.skipped.some((s) => /TCP traffic/.test(s)));
});

test("where: nothing into the control plane's namespace or a namespace with no meshed workload; no mesh VirtualService for a gateway-only host", () => {
  const g = new Graph();
  calls(g, "a", "b", 500, 50);
  const a = g.node("shop", "a")!;
  for (let i = 0; i < 500; i++)
    for (const host of [`zipkin.istio-system.svc.${D}`, `legacy.batch.svc.${D}`])
      g.observe(
        a,
        { dir: "outbound", cluster: `outbound|9411||${host}`, authority: "", proto: "HTTP/1.1" },
        200,
        2000,
        T0 + i * 2400,
        "POST",
      );
  const gw = g.node("shop", "edge")!;
  gw.proxy = { kind: "gateway", why: "test" };
  for (let i = 0; i < 500; i++)
    g.observe(
      gw,
      { dir: "outbound", cluster: `outbound|8080||${fq("front")}`, authority: "", proto: "HTTP/1.1" },
      200,
      40_000,
      T0 + i * 2400,
      "GET",
    );
  const t = run(g, { b: 2, front: 2 });
  const rec = (h: string) => t.rules.find((r) => r.host === h)!;
  for (const h of [`zipkin.istio-system.svc.${D}`, `legacy.batch.svc.${D}`]) {
    assert.is(rec(h).virtualService, null, h);
    assert.is(rec(h).destinationRule, null, h);
  }
  assert.match(rec(`zipkin.istio-system.svc.${D}`).skipped[0], /istio-system is the control plane's namespace/);
  assert.match(rec(`legacy.batch.svc.${D}`).skipped[0], /batch has no meshed workload/);
  const front = rec(fq("front"));
  assert.is(front.virtualService, null, "a VirtualService without gateways: would not touch gateway traffic");
  assert.ok(front.skipped.some((s) => /no sidecar calls .*, only shop\/edge \(gateway\)/.test(s)));
  assert.not.ok(
    front.rationale.some((w) => w.field.startsWith("http[0]")),
    "no reason listed for a route field that was not emitted",
  );
  assert.ok(front.destinationRule, "a DestinationRule applies to gateway traffic too");
});

test("data plane advisor: Istio's per-1,000-rps figures per namespace; a waypoint only where L7 features are in use; scoped config saved from the savings model", () => {
  const g = new Graph();
  // a → b: 1,200,000 requests over 20 minutes = 1,000 rps, seen by a's and b's proxies.
  const a = g.node("shop", "a")!,
    b = g.node("shop", "b")!;
  for (const [n, dir, cluster] of [
    [a, "outbound", `outbound|8080||${fq("b")}`],
    [b, "inbound", "inbound|8080||"],
  ] as const) {
    n.pods.add(`${n.name}-1`);
    g.observe(n, { dir, cluster, authority: "b:8080", proto: "HTTP/1.1" }, 200, 1000, T0, "GET");
    g.observe(n, { dir, cluster, authority: "b:8080", proto: "HTTP/1.1" }, 200, 1000, T0 + 1_200_000, "GET");
    [...n.edges.values()][0].count = 1_200_000;
  }
  const plain = run(g, { b: 1 }).dataplane[0];
  assert.is(plain.namespace, "shop");
  assert.is(plain.rps, 2000, "each request counted at both proxies");
  assert.equal(plain.sidecar, { vcpu: 0.42, memMB: 200 }, "2 × idle (0.01, 40) + 2 × (0.20 vCPU, 60 MB)");
  assert.equal(
    [plain.ambient.vcpu, plain.ambient.memMB, plain.ambient.waypoint],
    [0.12, 24, false],
    "2 × ztunnel share",
  );
  assert.is(plain.choice, "ambient");
  assert.ok(plain.loses.ambient.some((l) => /waypoint/.test(l)));
  const l7 = run(g, { b: 1 }, {}, [
    { kind: "VirtualService", metadata: { name: "b", namespace: "shop" }, spec: { hosts: ["b"], http: [] } },
  ]).dataplane[0];
  assert.ok(l7.ambient.waypoint, "a VirtualService needs a waypoint in ambient");
  assert.is(l7.l7Rps, 1000, "the waypoint serves b's inbound requests");
  assert.equal([l7.ambient.vcpu, l7.ambient.memMB], [0.12 + 0.01 + 0.25, 24 + 40 + 60]);
  assert.match(l7.l7Why.join(), /VirtualService shop\/b routes b/);
});

test("ownership: a user VirtualService or DestinationRule for the host is never overridden", () => {
  const g = new Graph();
  calls(g, "a", "b", 500, 50);
  const t = run(g, { b: 2 }, {}, [
    {
      kind: "VirtualService",
      metadata: { name: "mine", namespace: "shop" },
      spec: { hosts: [fq("b")], http: [{ route: [{ destination: { host: fq("b") } }] }] },
    },
    { kind: "DestinationRule", metadata: { name: "mine", namespace: "shop" }, spec: { host: fq("b") } },
  ]);
  assert.is(t.rules[0].virtualService, null);
  assert.is(t.rules[0].destinationRule, null);
  assert.ok(
    t.rules[0].skipped.some((s) => /user VirtualService already routes .*timeout and retries left to it/.test(s)),
  );
  assert.ok(
    t.rules[0].skipped.some((s) =>
      /user DestinationRule already covers .*outlierDetection, connectionPool left to it/.test(s),
    ),
  );
  assert.equal(t.rules[0].rationale, [], "nothing emitted, so no field is explained as if it were");
  // A short host in the user's object means its own namespace (Istio ResolveShortnameToFQDN).
  const short = run(g, { b: 2 }, {}, [
    { kind: "VirtualService", metadata: { name: "mine", namespace: "shop" }, spec: { hosts: ["b"], http: [] } },
  ]);
  assert.is(short.rules[0].virtualService, null);
  const other = run(g, { b: 2 }, {}, [
    {
      kind: "VirtualService",
      metadata: { name: "m", namespace: "shop", labels: { "app.kubernetes.io/managed-by": "meshtune" } },
      spec: { hosts: [fq("b")] },
    },
  ]);
  assert.ok(other.rules[0].virtualService, "meshtune's own VirtualService is not a user object");
});

test("every emitted object validates against Istio's CRD schema; broken objects are refused with Istio's messages", () => {
  const g = new Graph();
  calls(g, "a", "b", 1000, 500);
  calls(g, "b", "c", 1000, 400);
  calls(g, "a", "d", 500, 30, { method: "POST", err5xx: 20 });
  const t = run(g, { b: 3, c: 1, d: 5 });
  let n = 0;
  for (const r of t.rules)
    for (const o of [r.virtualService, r.destinationRule])
      if (o) {
        assert.equal(validateRule(o), [], `${o.kind} ${o.metadata.name}`);
        n++;
      }
  assert.ok(n >= 5);
  assert.equal(t.invalid, []);
  const bad = {
    apiVersion: "networking.istio.io/v1",
    kind: "VirtualService",
    metadata: { name: "x", namespace: "shop" },
    spec: {
      hosts: ["x"],
      http: [
        {
          timeout: "0.0005s",
          retries: { attempts: 2, retryOn: "sometimes", perTryTimeout: "5s" },
          route: [{ destination: { host: "x" } }],
        },
      ],
    },
  };
  const errs = validateRule(bad);
  assert.ok(errs.some((e) => /greater than 1ms/.test(e)));
  assert.ok(errs.some((e) => /"sometimes" is not a valid retryOn policy/.test(e)));
  assert.ok(
    validateRule({ ...bad, spec: { hosts: ["x"], http: [{ timeout: 5 }] } }).some((e) =>
      /^schema: .*timeout must be string/.test(e),
    ),
  );
  assert.ok(
    validateRule({
      apiVersion: "networking.istio.io/v1",
      kind: "DestinationRule",
      metadata: { name: "x", namespace: "s" },
      spec: { host: "x", trafficPolicy: { retryBudget: { percent: 120 } } },
    }).some((e) => /percent must be <= 100/.test(e)),
  );
  assert.is(dur(0.2), "0.001s");
  assert.is(dur(2640), "2.64s");
});

test("sidecar resources: Istio's cost model as the prior, Prometheus calibration, QoS per the workload's class", () => {
  const r = recommendResources({ workload: "shop/a", rps: 2000, clusters: 10, endpoints: 20, qos: "Burstable" });
  assert.is(r.annotations["sidecar.istio.io/proxyCPU"], "410m", "0.01 + 0.20 × 2");
  assert.is(r.annotations["sidecar.istio.io/proxyMemory"], "168Mi", "40 + 60 × 2 MB + config, rounded up");
  assert.ok(
    parseInt(r.annotations["sidecar.istio.io/proxyCPULimit"]) > parseInt(r.annotations["sidecar.istio.io/proxyCPU"]),
    "Burstable: requests < limits",
  );
  const gq = recommendResources({
    workload: "shop/a",
    rps: 2000,
    clusters: 10,
    endpoints: 20,
    qos: "Guaranteed",
    observed: { cpuCores: 0.5, memoryBytes: 100 * 1048576 },
  });
  assert.is(gq.annotations["sidecar.istio.io/proxyCPU"], "600m", "observed p95 × 1.2 replaces the model");
  assert.is(
    gq.annotations["sidecar.istio.io/proxyCPULimit"],
    gq.annotations["sidecar.istio.io/proxyCPU"],
    "Guaranteed: limits = requests",
  );
  assert.is(gq.annotations["sidecar.istio.io/proxyMemoryLimit"], gq.annotations["sidecar.istio.io/proxyMemory"]);
  assert.equal(
    (gq.patch as { spec: { template: { metadata: { annotations: object } } } }).spec.template.metadata.annotations,
    gq.annotations,
  );
  const c = (res: object) => ({ spec: { containers: [{ name: "app", resources: res }] } });
  assert.is(qosOf(c({ limits: { cpu: "1", memory: "1Gi" } })), "Guaranteed", "requests default to limits");
  assert.is(qosOf(c({ requests: { cpu: "1" } })), "Burstable");
  assert.is(qosOf(c({})), "BestEffort");
  assert.is(
    qosOf({
      spec: {
        containers: [
          { resources: { limits: { cpu: "1", memory: "1Gi" } } },
          { resources: { requests: { cpu: "1", memory: "1Gi" } } },
        ],
      },
    }),
    "Burstable",
  );
});

test("discovery: a namespace nobody meshed calls is excluded; a service only its own namespace calls gets exportTo with the fallback kept", () => {
  const g = new Graph();
  calls(g, "a", "b", 200, 10);
  const t = run(g, { a: 1, b: 1 }, {}, [
    { kind: "Namespace", metadata: { name: "shop" } },
    { kind: "Namespace", metadata: { name: "batch" } },
    { kind: "Namespace", metadata: { name: "istio-system" } },
    {
      kind: "Service",
      metadata: { name: "etl", namespace: "batch" },
      spec: { clusterIP: "10.0.0.9", ports: [{ port: 80 }, { port: 81 }] },
    },
  ]);
  assert.equal(t.discovery.excludedNamespaces, ["batch"]);
  assert.equal(t.discovery.meshConfig, {
    discoverySelectors: [
      { matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["batch"] }] },
    ],
  });
  assert.equal(
    t.discovery.exportTo.map((e) => e.host),
    [fq("b")],
  );
  assert.is(t.discovery.exportTo[0].annotation, ".,istio-system,meshtune-system");
  assert.ok(t.discovery.saving.clustersPerProxy >= 3, "etl's 2 ports + b's port");
  // An idle namespace with an injected pod is meshed: hiding it from istiod would leave that
  // pod's proxy without config (issue 24 item 5).
  const idle = run(g, { a: 1, b: 1 }, {}, [
    { kind: "Namespace", metadata: { name: "shop" } },
    { kind: "Namespace", metadata: { name: "legacy" } },
    { kind: "Namespace", metadata: { name: "batch" } },
    {
      kind: "Pod",
      metadata: { name: "old-1", namespace: "legacy", annotations: { "sidecar.istio.io/status": "{}" } },
      spec: { containers: [{ name: "app" }, { name: "istio-proxy" }] },
    },
  ]);
  assert.equal(idle.discovery.excludedNamespaces, ["batch"], "legacy holds an injected pod: kept");
});

test("CryptoMB: gateways and high-handshake workloads on capable nodes only, preferred affinity, fallback on; nothing forced", () => {
  const nodes = [
    { name: "icx", labels: { "meshtune.io/cryptomb": "true", pool: "edge" } },
    { name: "zen3", labels: { "meshtune.io/cryptomb": "false", pool: "core" } },
  ];
  const [gw, busy, quiet, pinned] = recommendCryptoMb(
    [
      {
        workload: "istio-system/ingress",
        kind: "gateway",
        handshakesPerS: null,
        tlsRequests: 500,
        pinnedTo: null,
        proxyConfig: "holdApplicationUntilProxyStarts: true\nconcurrency: 2\n",
      },
      { workload: "shop/api", kind: "sidecar", handshakesPerS: 400, tlsRequests: 0, pinnedTo: null },
      { workload: "shop/b", kind: "sidecar", handshakesPerS: 3, tlsRequests: 9000, pinnedTo: null },
      { workload: "shop/pinned", kind: "gateway", handshakesPerS: null, tlsRequests: 10, pinnedTo: { pool: "core" } },
    ],
    nodes,
  );
  assert.ok(gw.apply && busy.apply);
  const tpl = (gw.patch as any).spec.template;
  const cfg = tpl.metadata.annotations["proxy.istio.io/config"];
  assert.match(cfg, /cryptomb:\n\s+pollDelay: 10ms\n\s+fallback: true/);
  assert.match(
    cfg,
    /holdApplicationUntilProxyStarts: true\nconcurrency: 2\n/,
    "the user's ProxyConfig fields are kept",
  );
  assert.match(gw.why, /gateway terminating TLS: 500 request\(s\) arrived over TLS/, "the evidence is named");
  assert.match(busy.why, /400 new TLS handshakes\/s ≥ 100 \(Prometheus\)/);
  assert.ok(
    tpl.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution,
    "preferred, never required",
  );
  assert.not.ok(tpl.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution);
  assert.not.ok(quiet.apply);
  assert.not.ok(pinned.apply);
  assert.match(pinned.why, /pinned .* none of which is capable/);
  assert.not.ok(
    recommendCryptoMb(
      [{ workload: "a/gw", kind: "gateway", handshakesPerS: null, tlsRequests: 5, pinnedTo: null }],
      [nodes[1]],
    )[0].apply,
  );
  const [plain, mtlsOnly, theirs, broken] = recommendCryptoMb(
    [
      { workload: "a/gw", kind: "gateway", handshakesPerS: null, tlsRequests: 0, pinnedTo: null },
      { workload: "a/svc", kind: "sidecar", handshakesPerS: null, tlsRequests: 800, pinnedTo: null },
      {
        workload: "a/own",
        kind: "gateway",
        handshakesPerS: 900,
        tlsRequests: 0,
        pinnedTo: null,
        proxyConfig: "privateKeyProvider:\n  qat: {}\n",
      },
      { workload: "a/bad", kind: "gateway", handshakesPerS: 900, tlsRequests: 0, pinnedTo: null, proxyConfig: "[1, 2" },
    ],
    nodes,
  );
  assert.is(plain.code, "no-tls-evidence", "a gateway with no TLS in the input is not assumed to terminate TLS");
  assert.is(mtlsOnly.code, "unknown-rate");
  assert.match(mtlsOnly.why, /800 request\(s\) arrived over TLS \(SNI in the access log: inbound mesh mTLS\)/);
  assert.is(theirs.code, "user-config", "another privateKeyProvider is the user's");
  assert.is(broken.code, "user-config");
});

test.run();

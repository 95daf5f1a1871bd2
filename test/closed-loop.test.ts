// The closed loop, end to end through the doubles: Bookinfo traffic through the real filter
// (test/proxywasm: one VM per worker, Envoy ≥ 1.33 properties) → reports → collector →
// controller (fake API server) applies Sidecars → Istio itself (the oracle: istio.io/istio's
// generator and Envoy simulator) recomputes each proxy's clusters and where each call goes →
// traffic and reports continue. Asserts: the collector keeps receiving every proxy's reports, every
// learned call reaches the same cluster before and after each apply, an unlearned one reaches the
// egressProxy, the collector and fallback clusters exist on every scoped proxy, both WasmPlugins
// land where the README says, and Sidecars keep every learned host past --retention.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Registry } from "prom-client";
import { FakeApiServer } from "./k8s/fake-apiserver.js";
import { loadKubeConfig, objectApi } from "../controller/k8s/kube.js";
import { LearnedStore } from "../controller/k8s/learned-store.js";
import { MeshController } from "../controller/reconcile/controller.js";
import { Graph } from "../controller/model/graph.js";
import { Collector } from "../controller/collector/server.js";
import { DEFAULT_SCOPE, DEFAULT_COLLECTOR_HOST } from "../controller/sidecar/scope.js";
import type { SidecarObj } from "../controller/sidecar/generate.js";
import { HostBuilder } from "./proxywasm/host.js";
import { EnvoyWorkers } from "./proxywasm/workers.js";
import { IstioOracle, type Hit, type OracleCall, type Chain } from "./helpers/istio-oracle.js";
import { scenario, service, pod } from "./istio/scenario.js";
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { ROOT } from "./helpers/cli.js";
import { istioctlAnalyze, describe } from "./helpers/istioctl.js";
import { toYaml } from "../controller/k8s/yaml.js";
import { FILTER_WASM, request } from "./helpers/filter.js";
import { deploymentPod } from "./fixtures/pods.js";

const MIN = 60_000,
  FLUSH = 10_000;
const T0 = Date.parse("2026-11-22T08:00:00Z");
const FALLBACK = "meshtune-fallback.meshtune-system.svc.cluster.local";
type Obj = Record<string, unknown>;
const SERVICES: [string, string, number][] = [
  ...["productpage", "details", "reviews", "ratings"].map((n): [string, string, number] => [n, "bookinfo", 9080]),
  ["meshtune-controller", "meshtune-system", 8080],
  ["meshtune-fallback", "meshtune-system", 80],
  ["istiod", "istio-system", 15012],
  ...Array.from({ length: 30 }, (_, i): [string, string, number] => [`svc-${i}`, `team-${i}`, 8080]),
];
const VIP = (i: number) => `10.96.${Math.floor(i / 200)}.${10 + (i % 200)}`;
const CATALOG: Obj[] = SERVICES.map(([n, ns, port], i) => service(ns, n, VIP(i), [{ port }]));
const vipOf = (name: string) => VIP(SERVICES.findIndex(([n]) => n === name));
const WASM_PLUGINS = parseAllDocuments(readFileSync(`${ROOT}/manifests/wasmplugin.yaml`, "utf8")).map(
  (d) => d.toJSON() as Obj,
);
// Who calls whom (Bookinfo): Host header as the app sends it, port.
const CALLS: Record<string, [string, number][]> = {
  "productpage-v1": [
    ["details:9080", 9080],
    ["reviews:9080", 9080],
  ],
  "reviews-v2": [["ratings:9080", 9080]],
  "details-v1": [],
  "ratings-v1": [],
};

test("closed loop: reports → Sidecars → scoped proxies keep working and keep reporting past retention", async () => {
  const fake = await new FakeApiServer().start();
  let now = T0;
  const ctlStop: (() => Promise<void>)[] = [];
  try {
    fake.put("namespaces", { metadata: { name: "bookinfo", labels: { "meshtune.io/enabled": "true" } } });
    const pods: Record<string, ReturnType<typeof deploymentPod>> = {
      "productpage-v1": deploymentPod("bookinfo", "productpage-v1", "6987489c74", "6fgz8", {
        app: "productpage",
        version: "v1",
      }),
      "reviews-v2": deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" }),
      "details-v1": deploymentPod("bookinfo", "details-v1", "79f774bdb9", "kx7lq", { app: "details", version: "v1" }),
      "ratings-v1": deploymentPod("bookinfo", "ratings-v1", "5d6f7c8b9d", "p2m4x", { app: "ratings", version: "v1" }),
    };
    for (const p of Object.values(pods)) fake.put("pods", p);
    for (const s of CATALOG) fake.put("services", s as { metadata: { name: string; namespace: string } });
    const kc = loadKubeConfig({ yaml: fake.kubeconfig() });
    const api = objectApi(kc);
    const graph = new Graph();
    const ctl = new MeshController(
      kc,
      api,
      graph,
      new LearnedStore(api),
      {
        mode: "apply",
        minWindowMs: 2 * MIN,
        retentionMs: 10 * MIN,
        fallback: { host: FALLBACK, port: 80 },
        scope: { ...DEFAULT_SCOPE, meshtuneHosts: [DEFAULT_COLLECTOR_HOST, FALLBACK] },
        defaultEnabled: false,
        dryRun: false,
        clusterDomain: "cluster.local",
        now: () => now,
        flushDelayMs: 10,
      },
      () => {},
      new Registry(),
    );
    ctlStop.push(() => ctl.stop());
    ctl.leading = true;
    await ctl.start();
    const collector = new Collector(graph, undefined, { auth: null, now: () => now });
    collector.onMerged = (ns, w) => ctl.touched(ns, w);

    // One Envoy (2 workers) per workload, identity from xds.node.metadata as Istio ≥ 1.25 serves it.
    const proxies = Object.fromEntries(
      Object.entries(pods).map(([w, p]) => [
        w,
        new EnvoyWorkers(
          () =>
            new HostBuilder()
              .wasmFile(FILTER_WASM)
              .envoy("1.36")
              .clockMs(now)
              .nodeMetadata({ WORKLOAD_NAME: w, NAMESPACE: "bookinfo", NAME: p.metadata.name, NODE_NAME: "node-a" })
              .pluginConfig({ flushIntervalMs: FLUSH }),
          2,
        ),
      ]),
    );
    const IPS: Record<string, string> = {
      "productpage-v1": "10.244.1.10",
      "reviews-v2": "10.244.1.11",
      "details-v1": "10.244.1.12",
      "ratings-v1": "10.244.1.13",
    };
    const oracle = IstioOracle.get();
    const applied = () =>
      Object.fromEntries(
        Object.keys(pods).map((w) => [
          w,
          (fake.get("sidecars", "bookinfo", w) as unknown as SidecarObj | undefined) ?? null,
        ]),
      );
    // Per workload: the calls it makes (learned) and one it never made before (unlearned).
    const UNLEARNED: OracleCall = { port: 9080, host: "svc-3.team-3", address: vipOf("svc-3") };
    const callsOf = (w: string): OracleCall[] => [
      ...CALLS[w].map(([host, port]) => ({ port, host, address: vipOf(host.split(":")[0]) })),
      UNLEARNED,
    ];
    const routes: Record<string, Map<string, Hit>> = {};
    const clusters: Record<string, Set<string>> = {};
    const chains: Record<string, Chain[]> = {};
    let asked = "";
    const rescope = async () => {
      const a = applied();
      const key = JSON.stringify(a);
      if (key === asked) return; // Istio's answer changes only when the Sidecars do
      asked = key;
      const objs = [
        ...CATALOG,
        ...WASM_PLUGINS,
        ...Object.values(a).filter((x): x is SidecarObj => !!x),
        ...Object.entries(pods).map(([w, p]) => pod("bookinfo", p.metadata.name, IPS[w], p.metadata.labels)),
      ] as Obj[];
      const ans = await oracle.answer(
        scenario(
          objs,
          Object.entries(pods).map(([w, p]) => ({
            name: p.metadata.name,
            namespace: "bookinfo",
            ip: IPS[w],
            labels: p.metadata.labels,
            calls: callsOf(w),
            names: true,
          })),
        ),
      );
      for (const v of ans.validation) assert.is(v.error, undefined, `Istio rejects ${v.kind} ${v.name}: ${v.error}`);
      Object.keys(pods).forEach((w, i) => {
        const p = ans.proxies[i];
        clusters[w] = new Set(p.xds!.cds.names);
        chains[w] = p.chains ?? [];
        routes[w] = new Map(callsOf(w).map((c, k) => [`${c.host}:${c.port}`, p.calls![k]]));
        const have = clusters[w];
        proxies[w].clusters = (c) => have.has(c); // proxy_http_call to a cluster the proxy lacks → BadArgument
      });
    };
    const baseline = new Map<string, Hit>();
    const unlearned: Record<string, Hit> = {};
    const failures: string[] = [];
    const received = new Map<string, number>();
    // One flush interval of traffic, then every worker's tick; reports delivered to the collector.
    const interval = async () => {
      for (const [w, calls] of Object.entries(CALLS))
        for (const [host, port] of calls)
          for (let i = 0; i < 4; i++) {
            const r = routes[w].get(`${host}:${port}`)!;
            const key = `${w}→${host}`;
            if (!baseline.has(key)) baseline.set(key, r);
            if (!r.cluster || r.error || r.cluster !== baseline.get(key)!.cluster)
              failures.push(`${key}: ${JSON.stringify(r)} at +${(now - T0) / MIN}m`);
            proxies[w].http(request(r.cluster ?? "", { host, code: r.cluster ? 200 : 503 }));
            // the callee's inbound side
            const callee = Object.keys(pods).find((p) => host.startsWith(p.split("-")[0]));
            if (callee && r.cluster) proxies[callee].http(request(`inbound|${port}||`, { host }));
          }
      now += FLUSH;
      for (const p of Object.values(proxies)) {
        p.advance(FLUSH);
        p.tick();
      }
      for (const [w, p] of Object.entries(proxies))
        for (const { vm, c } of p.pending()) {
          const err = collector.ingest(new TextDecoder().decode(c.body));
          assert.is(err, null, `${w}: ${err}`);
          received.set(w, (received.get(w) ?? 0) + 1);
          vm.respond(c, { status: 202 });
        }
      await new Promise((r) => setTimeout(r, 20));
      await ctl.queue.drained();
      await ctl.flush();
      await rescope();
      for (const w of Object.keys(pods)) unlearned[w] = routes[w].get(`${UNLEARNED.host}:${UNLEARNED.port}`)!;
    };

    await rescope();
    for (let i = 0; i < 15; i++) await interval(); // past --min-window: Sidecars applied
    const first = applied();
    for (const w of Object.keys(pods)) assert.ok(first[w], `Sidecar for ${w}`);
    assert.equal(first["productpage-v1"]!.spec.egress[0].hosts, [
      "bookinfo/details.bookinfo.svc.cluster.local",
      "bookinfo/reviews.bookinfo.svc.cluster.local",
      "istio-system/*",
      `meshtune-system/${DEFAULT_COLLECTOR_HOST}`,
      `meshtune-system/${FALLBACK}`,
    ]);
    const collectorCluster = `outbound|8080||${DEFAULT_COLLECTOR_HOST}`;
    for (const w of Object.keys(pods)) {
      assert.ok(clusters[w].has(collectorCluster), `${w} keeps the collector cluster`);
      assert.ok(clusters[w].has(`outbound|80||${FALLBACK}`), `${w} keeps the fallback cluster`);
      assert.is(unlearned[w].cluster, `outbound|80||${FALLBACK}`, `${w}: unlearned → egressProxy`);
      // README "TCP learning": the HTTP plugin on every HTTP chain, the NETWORK plugin on per-service
      // TCP and inbound chains, and neither on the outbound catch-all (Passthrough/egressProxy).
      // Istio names the filter extensions.istio.io/wasmplugin/<ns>.<name> (≤ 1.30) or, since WasmPlugins
      // became TrafficExtensions, extensions.istio.io/trafficextension/<ns>.<name>~istio-translated-wasmplugin.
      const HTTP_PLUGIN = /\/istio-system\.meshtune(~|$)/,
        TCP_PLUGIN = /\/istio-system\.meshtune-tcp(~|$)/;
      const httpChains = chains[w].filter((c) => c.httpFilters);
      assert.ok(httpChains.length > 0);
      for (const c of httpChains)
        assert.ok(
          c.httpFilters!.some((f) => HTTP_PLUGIN.test(f)),
          `HTTP plugin on ${c.listener}/${c.name}: ${c.httpFilters}`,
        );
      const inbound = chains[w].filter((c) => c.listener === "virtualInbound" && !c.name.endsWith("-blackhole"));
      assert.ok(
        inbound.length > 0 && inbound.every((c) => c.networkFilters.some((f) => TCP_PLUGIN.test(f))),
        JSON.stringify(inbound),
      );
      for (const c of chains[w].filter((c) => c.listener === "virtualOutbound"))
        assert.not.ok(
          c.networkFilters.some((f) => HTTP_PLUGIN.test(f) || TCP_PLUGIN.test(f)),
          `no plugin on the catch-all ${c.name}`,
        );
    }
    assert.ok(clusters["productpage-v1"].size < 12, `scoped: ${[...clusters["productpage-v1"]]}`);
    const before = new Map(received);
    // ≥ 3 more flush intervals, then beyond --retention (10 min) with traffic continuing.
    for (let i = 0; i < 75; i++) await interval();
    assert.equal(failures, [], "no request that worked before the apply fails after it");
    for (const w of Object.keys(pods))
      assert.ok(
        (received.get(w) ?? 0) >= (before.get(w) ?? 0) + 3 * 2,
        `${w} keeps reporting (2 workers × ≥ 3 flushes)`,
      );
    const later = applied();
    assert.ok(now - T0 > 10 * MIN + 2 * MIN, "ran past retention");
    assert.equal(
      later["productpage-v1"]!.spec.egress[0].hosts,
      first["productpage-v1"]!.spec.egress[0].hosts,
      "learned hosts kept while traffic continues",
    );
    assert.ok(later["reviews-v2"]!.spec.egress[0].hosts.includes("bookinfo/ratings.bookinfo.svc.cluster.local"));
    // What the controller applied, with the catalog and the WasmPlugins, under istioctl analyze -A.
    const msgs = istioctlAnalyze({
      "catalog.yaml": [...CATALOG, ...WASM_PLUGINS].map((o) => toYaml(o)).join("---\n"),
      "applied.yaml": Object.values(later)
        .map((o) => toYaml(o))
        .join("---\n"),
    });
    assert.equal(msgs, [], describe(msgs));
  } finally {
    for (const s of ctlStop) await s();
    await fake.stop();
  }
});

test.run();

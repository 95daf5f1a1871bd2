// The closed loop, end to end through the doubles: Bookinfo traffic through the real filter
// (test/proxywasm: one VM per worker, Envoy ≥ 1.33 properties) → reports → collector →
// controller (fake API server) applies Sidecars → the Istio scope model (test/istio) recomputes
// each proxy's clusters and routes → traffic and reports continue. Asserts: the collector keeps
// receiving every proxy's reports, no request that worked unscoped fails scoped, and Sidecars
// keep every learned host past --retention while traffic continues.
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
import { ProxyScope, type Mesh, type Route } from "./istio/scope-model.js";
import { FILTER_WASM, request } from "./helpers/filter.js";
import { deploymentPod } from "./fixtures/pods.js";

const MIN = 60_000,
  FLUSH = 10_000;
const T0 = Date.parse("2026-11-22T08:00:00Z");
const FALLBACK = "meshtune-fallback.meshtune-system.svc.cluster.local";
const fq = (n: string, ns = "bookinfo") => `${n}.${ns}.svc.cluster.local`;
const MESH: Mesh = {
  outbound: "ALLOW_ANY",
  services: [
    ...["productpage", "details", "reviews", "ratings"].map((n) => ({
      namespace: "bookinfo",
      host: fq(n),
      ports: [9080],
    })),
    { namespace: "meshtune-system", host: DEFAULT_COLLECTOR_HOST, ports: [8080] },
    { namespace: "meshtune-system", host: FALLBACK, ports: [80] },
    { namespace: "istio-system", host: fq("istiod", "istio-system"), ports: [15012] },
    ...Array.from({ length: 30 }, (_, i) => ({
      namespace: `team-${i}`,
      host: fq(`svc-${i}`, `team-${i}`),
      ports: [8080],
    })),
  ],
  virtualServices: [],
};
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
    for (const s of MESH.services)
      fake.put("services", {
        metadata: { name: s.host.split(".")[0], namespace: s.namespace },
        spec: { clusterIP: "10.96.0.1", ports: s.ports.map((p) => ({ name: `http-${p}`, port: p })) },
      });
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
    const scopes: Record<string, ProxyScope> = {};
    const applied = () =>
      Object.fromEntries(
        Object.keys(pods).map((w) => [
          w,
          (fake.get("sidecars", "bookinfo", w) as unknown as SidecarObj | undefined) ?? null,
        ]),
      );
    const rescope = () => {
      const a = applied();
      for (const w of Object.keys(pods)) {
        scopes[w] = new ProxyScope("bookinfo", a[w], MESH);
        const have = scopes[w].clusters();
        proxies[w].clusters = (c) => have.has(c); // proxy_http_call to a cluster the proxy lacks → BadArgument
      }
    };
    const baseline = new Map<string, Route>();
    const failures: string[] = [];
    const received = new Map<string, number>();
    // One flush interval of traffic, then every worker's tick; reports delivered to the collector.
    const interval = async () => {
      for (const [w, calls] of Object.entries(CALLS))
        for (const [host, port] of calls)
          for (let i = 0; i < 4; i++) {
            const r = scopes[w].route(host.split(":")[0], port);
            const key = `${w}→${host}`;
            if (!baseline.has(key)) baseline.set(key, r);
            if (r.cluster === null || r.cluster !== baseline.get(key)!.cluster)
              failures.push(`${key}: ${JSON.stringify(r)} at +${(now - T0) / MIN}m`);
            proxies[w].http(request(r.cluster ?? "", { host, code: r.cluster ? 200 : r.code }));
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
      rescope();
    };

    rescope();
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
    assert.is(
      scopes["productpage-v1"].clusters().size < 10,
      true,
      `scoped: ${[...scopes["productpage-v1"].clusters()]}`,
    );
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
  } finally {
    for (const s of ctlStop) await s();
    await fake.stop();
  }
});

test.run();

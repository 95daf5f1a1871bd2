// make bench (controller): reconcile a synthetic mesh of 10k services and 100k edges
// (10k workloads x 10 outbound edges) into Sidecars with the real MeshController.reconcile,
// against an in-memory object API (no network), and report time and peak RSS.
// Baseline in the same run: one plain pass over all 100k edges (the floor any reconcile pays).
// ROUNDS (5) rounds, each in a fresh process (so one round's garbage and heap growth never weigh
// on the next, and peak RSS is one reconcile's), the baseline timed in the same process; median
// [min–max]. Every round must apply and persist, or nothing is printed.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Registry } from "prom-client";
import type { KubeConfig, KubernetesObjectApi, V1Pod } from "@kubernetes/client-node";
import { Graph, emptyStats } from "../controller/model/graph.js";
import { MeshController } from "../controller/reconcile/controller.js";
import { LearnedStore } from "../controller/k8s/learned-store.js";
import { DEFAULT_SCOPE } from "../controller/sidecar/scope.js";

const FALLBACK = "meshtune-fallback.meshtune-system.svc.cluster.local";

const SERVICES = 10_000,
  NAMESPACES = 100,
  EDGES_PER = 10,
  ROUNDS = Number(process.env.ROUNDS ?? 5);
const NOW = Date.now();

interface Round {
  ms: number;
  persistMs: number;
  baseMs: number;
  edges: number;
  applied: number;
  persisted: number;
  floor: number;
}

async function round(): Promise<Round> {
  const written: unknown[] = [];
  // Stands in for the API server: writes return the object and are recorded; ConfigMap reads are empty.
  const api = {
    patch: async (o: unknown) => {
      written.push(o);
      return o;
    },
    read: async () => {
      throw Object.assign(new Error("not found"), { code: 404 });
    },
    // Learned state is persisted by read-then-create/replace ConfigMaps (k8s/learned-store.ts).
    create: async (o: unknown) => {
      written.push(o);
      return o;
    },
    replace: async (o: unknown) => {
      written.push(o);
      return o;
    },
  } as unknown as KubernetesObjectApi;

  const graph = new Graph();
  const ctl = new MeshController(
    {} as KubeConfig,
    api,
    graph,
    new LearnedStore(api),
    {
      mode: "apply",
      minWindowMs: 0,
      retentionMs: 7 * 86400e3,
      fallback: { host: FALLBACK, port: 80 },
      // As the controller command builds it (controller/commands/controller.ts).
      scope: {
        ...DEFAULT_SCOPE,
        alwaysInclude: ["istio-system/*"],
        meshtuneHosts: ["meshtune-controller.meshtune-system.svc.cluster.local", FALLBACK],
        fallbackHosts: [FALLBACK],
      },
      defaultEnabled: true,
      dryRun: false,
      clusterDomain: "cluster.local",
      now: () => NOW,
    },
    () => {},
    new Registry(),
  );

  let seed = 7;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
  const keys: string[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const ns = `ns-${i % NAMESPACES}`,
      name = `svc-${i}-v1`;
    // An injected pod, as the API server shows it: only a sidecar gets a Sidecar (model/identity.ts).
    const pod: V1Pod = {
      metadata: {
        name: `${name}-6987489c74-6fgz8`,
        namespace: ns,
        labels: { app: `svc-${i}`, version: "v1" },
        annotations: { "sidecar.istio.io/status": '{"containers":["istio-proxy"]}' },
      },
      spec: { containers: [{ name: "app" }, { name: "istio-proxy" }] },
    };
    ctl.pods.set(`${ns}/${name}`, new Map([[pod.metadata!.name!, pod]]));
    const node = graph.node(ns, name)!;
    for (let e = 0; e < EDGES_PER; e++) {
      const d = rnd(SERVICES);
      const s = emptyStats(NOW - 3600e3);
      s.count = 1;
      s.lastSeenMs = NOW;
      graph.addEdge(
        node,
        {
          dir: "outbound",
          cluster: `outbound|8080||svc-${d}.ns-${d % NAMESPACES}.svc.cluster.local`,
          authority: "",
          proto: "HTTP/1.1",
        },
        s,
      );
    }
    keys.push(`${ns}/${name}`);
  }
  ctl.ready = true;
  ctl.leading = true; // one replica: it holds the lease (only the leader reconciles)

  let t0 = performance.now();
  let floor = 0;
  for (const n of graph.nodes.values()) for (const e of n.edges.values()) floor += e.cluster.length;
  const baseMs = performance.now() - t0;

  t0 = performance.now();
  for (const k of keys) await ctl.reconcile(k);
  const tReconciled = performance.now();
  await ctl.flush();
  await ctl.stop();
  const ms = performance.now() - t0,
    persistMs = performance.now() - tReconciled;
  const edges = [...graph.nodes.values()].reduce((a, n) => a + n.edges.size, 0);
  // The work happened, or no figure is printed: one Sidecar applied per workload, and the learned
  // state persisted (ConfigMaps).
  const applied = written.filter((o) => (o as { kind: string }).kind === "Sidecar").length,
    persisted = written.filter((o) => (o as { kind: string }).kind === "ConfigMap").length;
  if (applied !== keys.length || persisted === 0)
    throw new Error(
      `reconcile bench: ${applied} Sidecars applied for ${keys.length} workloads, ${persisted} ConfigMaps persisted: the work did not happen`,
    );
  return { ms, persistMs, baseMs, edges, applied, persisted, floor };
}

if (process.argv[2] === "--round") {
  process.stdout.write(JSON.stringify({ ...(await round()), rssMb: process.resourceUsage().maxRSS / 1024 }) + "\n");
  process.exit(0);
}

const rounds: (Round & { rssMb: number })[] = [];
for (let r = 0; r < ROUNDS; r++) {
  // The same pinning as this process (make bench runs it under taskset).
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--round"], { encoding: "utf8" });
  rounds.push(JSON.parse(out.trim().split("\n").pop()!));
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const range = (xs: number[], f: (x: number) => string) => `[${f(Math.min(...xs))}–${f(Math.max(...xs))}]`;
const sec = (x: number) => (x / 1000).toFixed(2);
const ms = rounds.map((r) => r.ms),
  base = rounds.map((r) => r.baseMs),
  ratio = rounds.map((r) => r.ms / r.baseMs),
  persist = rounds.map((r) => r.persistMs),
  rss = rounds.map((r) => r.rssMb);
const r0 = rounds[0];
console.log(
  `reconcile bench: ${SERVICES.toLocaleString()} services, ${r0.edges.toLocaleString()} edges, ${SERVICES.toLocaleString()} workloads; ${ROUNDS} rounds (a process each), median [min–max] (floor checksum ${r0.floor % 97})`,
);
console.log(`  baseline: one pass over all edges ${med(base).toFixed(1)} ms ${range(base, (x) => x.toFixed(1))}`);
console.log(
  `  reconcile all (decide + schema-validate + apply + persist): ${sec(med(ms))} s ${range(ms, sec)} (target < 1 s: ${med(ms) < 1000 ? "met" : "MISSED"})  ${med(ratio).toFixed(0)}x baseline ${range(ratio, (x) => x.toFixed(0))}`,
);
console.log(
  `  of which persisting learned state at the end (flush + stop): ${sec(med(persist))} s; each round applied ${r0.applied.toLocaleString()} Sidecars and wrote ${r0.persisted} ConfigMaps`,
);
console.log(`  peak RSS: ${med(rss).toFixed(0)} MB ${range(rss, (x) => x.toFixed(0))}`);

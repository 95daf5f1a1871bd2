// `meshtune controller`: collector + reconcile loop, in-cluster. Only the Lease holder
// reconciles; every replica serves the collector so no report is refused during a handover.
import { createServer, type Server } from "node:http";
import { hostname } from "node:os";
import { collectDefaultMetrics, Registry } from "prom-client";
import { Graph } from "../model/graph.js";
import { Collector } from "../collector/server.js";
import { loadKubeConfig, objectApi } from "../k8s/kube.js";
import { LearnedStore } from "../k8s/learned-store.js";
import { LeaderElector } from "../k8s/leader.js";
import { MeshController, type ControllerOptions } from "../reconcile/controller.js";
import { PrometheusSource } from "../sources/prometheus.js";
import { jsonLogger as log } from "../log.js";
import { UserError } from "../errors.js";

export interface ControllerFlags {
  port: string; kubeconfig?: string; mode: string; dryRun?: boolean; defaultEnabled?: boolean;
  minWindow: string; retention: string; fallbackHost: string; fallbackPort: string; alwaysInclude: string[];
  leaseNamespace: string; prometheus?: string; prometheusInterval: string; clusterDomain: string;
}

/** "90s", "15m", "2h", "7d" → ms. */
export function duration(flag: string, v: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(v);
  if (!m) throw new UserError(`${flag} ${v}: expected a duration like 30s, 15m, 2h or 7d`, 2);
  return Number(m[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "ms"];
}

export async function runController(f: ControllerFlags): Promise<void> {
  if (f.mode !== "apply" && f.mode !== "recommend") throw new UserError(`--mode ${f.mode}: expected apply or recommend`, 2);
  const opts: ControllerOptions = {
    mode: f.mode, dryRun: !!f.dryRun, defaultEnabled: !!f.defaultEnabled, clusterDomain: f.clusterDomain,
    minWindowMs: duration("--min-window", f.minWindow), retentionMs: duration("--retention", f.retention),
    alwaysInclude: f.alwaysInclude, fallback: { host: f.fallbackHost, port: Number(f.fallbackPort) },
  };
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "meshtune_" });
  const kc = loadKubeConfig({ file: f.kubeconfig });
  const api = objectApi(kc);
  const graph = new Graph();
  const collector = new Collector(graph, registry);
  const ctl = new MeshController(kc, api, graph, new LearnedStore(api, (m, x) => log("warn", m, x)), opts, log, registry);
  collector.onMerged = (ns, w) => ctl.touched(ns, w);
  const identity = `${hostname()}-${process.pid}`;
  const elector = new LeaderElector(api, { namespace: f.leaseNamespace, name: "meshtune-controller", identity, leaseDurationMs: 15_000 });

  const server: Server = createServer((req, res) => {
    if (req.url === "/healthz") return void res.writeHead(200).end("ok\n");
    if (req.url === "/readyz") return void res.writeHead(ctl.ready ? 200 : 503).end(ctl.ready ? "ready\n" : "waiting for initial sync\n");
    // The recommend-only / dry-run report: each workload's decision, and the Sidecar it would get.
    if (req.url === "/recommendations" && req.method === "GET") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ mode: opts.mode, dryRun: opts.dryRun, workloads: ctl.status() }, null, 2));
    collector.handle(req, res);
  });
  await new Promise<void>((r) => server.listen(Number(f.port), "0.0.0.0", r));
  log("info", "meshtune controller listening", { port: Number(f.port), mode: opts.mode, dryRun: opts.dryRun, identity });

  const prom = f.prometheus ? new PrometheusSource(f.prometheus, graph, (ns, w) => ctl.touched(ns, w), log) : null;
  let promTimer: NodeJS.Timeout | null = null;
  let started = false;
  const loop = async () => {
    const leader = await elector.tick();
    if (leader && !started) {
      started = true;
      log("info", "became leader; starting informers", { identity });
      await ctl.start();
      if (prom) promTimer = setInterval(() => prom.poll().catch((e) => log("warn", "prometheus poll failed", { error: (e as Error).message })), duration("--prometheus-interval", f.prometheusInterval));
    } else if (!leader && started) {
      log("warn", "lost leadership; stopping", { identity });
      process.exit(1); // restart clean, as client-go controllers do
    }
  };
  await loop();
  const timer = setInterval(() => loop().catch((e) => log("error", "leader loop failed", { error: (e as Error).message })), 5_000);
  const shutdown = async () => {
    clearInterval(timer);
    if (promTimer) clearInterval(promTimer);
    await ctl.stop();
    await elector.release();
    server.close();
    process.exit(0);
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  await new Promise(() => {}); // runs until a signal
}

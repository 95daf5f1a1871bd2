// `meshtune controller`: collector + reconcile loop, in-cluster. Every replica watches (Ready
// after its own sync) and serves the collector; only the Lease holder reconciles and writes.
// A standby forwards each valid report to the leader (URL published on the Lease) and answers
// with the leader's answer: 202 means the report is in the leader's graph; 503 when no leader
// is reachable, so the filter keeps the data and retries. Losing the lease stops the work,
// never the process (Istio pilot/pkg/leaderelection AddRunFunction semantics).
import { createServer, type Server } from "node:http";
import { hostname } from "node:os";
import { collectDefaultMetrics, Registry } from "prom-client";
import { Graph } from "../model/graph.js";
import { Collector, FORWARDED } from "../collector/server.js";
import { loadKubeConfig, objectApi } from "../k8s/kube.js";
import { LearnedStore } from "../k8s/learned-store.js";
import { LeaderElector } from "../k8s/leader.js";
import { MeshController, type ControllerOptions } from "../reconcile/controller.js";
import { PrometheusSource } from "../sources/prometheus.js";
import { jsonLogger as log } from "../log.js";
import { UserError } from "../errors.js";
import { DEFAULT_SCOPE } from "../sidecar/scope.js";
import { checkScopeFlags } from "./scope-flags.js";

export interface ControllerFlags {
  port: string; kubeconfig?: string; mode: string; dryRun?: boolean; defaultEnabled?: boolean;
  minWindow: string; retention: string; fallbackHost: string; fallbackPort: string; alwaysInclude: string[];
  leaseNamespace: string; prometheus?: string; prometheusInterval: string; clusterDomain: string;
  collectorHost: string; meshConfigMap: string; advertiseUrl?: string; leaseDuration: string; renewDeadline: string; retryPeriod: string;
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
    fallback: { host: f.fallbackHost, port: Number(f.fallbackPort) }, meshConfigMap: f.meshConfigMap,
    scope: { ...DEFAULT_SCOPE, alwaysInclude: f.alwaysInclude, clusterDomain: f.clusterDomain, meshtuneHosts: [f.collectorHost, f.fallbackHost] },
  };
  checkScopeFlags(f.alwaysInclude, [["--collector-host", f.collectorHost], ["--fallback-host", f.fallbackHost]]);
  const leaseMs = duration("--lease-duration", f.leaseDuration), renewMs = duration("--renew-deadline", f.renewDeadline), retryMs = duration("--retry-period", f.retryPeriod);
  if (!(retryMs < renewMs && renewMs < leaseMs)) throw new UserError("leader election needs --retry-period < --renew-deadline < --lease-duration", 2);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "meshtune_" });
  const kc = loadKubeConfig({ file: f.kubeconfig });
  const api = objectApi(kc);
  const graph = new Graph();
  const collector = new Collector(graph, registry);
  const ctl = new MeshController(kc, api, graph, new LearnedStore(api, (m, x) => log("warn", m, x)), opts, log, registry);
  collector.onMerged = (ns, w) => ctl.touched(ns, w);
  const identity = `${hostname()}-${process.pid}`;
  const advertise = f.advertiseUrl ?? (process.env.POD_IP ? `http://${process.env.POD_IP}:${f.port}` : `http://127.0.0.1:${f.port}`);
  const elector = new LeaderElector(api, { namespace: f.leaseNamespace, name: "meshtune-controller", identity, leaseDurationMs: leaseMs, renewDeadlineMs: renewMs, collectorUrl: advertise });
  collector.relay = async (body, forwarded) => {
    if (elector.leader) return null; // merge here
    if (forwarded || !elector.leaderUrl) return { status: 503, text: "no leader to accept the report; retry" };
    const r = await fetch(`${elector.leaderUrl}/v1/reports`, { method: "POST", headers: { "content-type": "application/json", [FORWARDED]: identity }, body, signal: AbortSignal.timeout(5000) });
    return { status: r.status, text: await r.text() };
  };

  const server: Server = createServer((req, res) => {
    if (req.url === "/healthz") return void res.writeHead(200).end("ok\n");
    // Ready after this replica's own informer sync, leader or not (a 2-replica rollout completes).
    if (req.url === "/readyz") return void res.writeHead(ctl.ready ? 200 : 503).end(ctl.ready ? "ready\n" : "waiting for initial sync\n");
    // The recommend-only / dry-run report: each workload's decision, and the Sidecar it would get.
    if (req.url === "/recommendations" && req.method === "GET") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ mode: opts.mode, dryRun: opts.dryRun, workloads: ctl.status() }, null, 2));
    collector.handle(req, res);
  });
  await new Promise<void>((r) => server.listen(Number(f.port), "0.0.0.0", r));
  log("info", "meshtune controller listening", { port: Number(f.port), mode: opts.mode, dryRun: opts.dryRun, identity });

  const prom = f.prometheus ? new PrometheusSource(f.prometheus, graph, (ns, w) => ctl.touched(ns, w), log) : null;
  let promTimer: NodeJS.Timeout | null = null;
  // Every replica syncs its informers and becomes Ready on its own, leader or not.
  ctl.start().then(() => log("info", "informers synced; ready", { identity }), (e) => log("error", "initial sync failed", { error: (e as Error).message }));
  let ticking = false;
  const loop = async () => {
    if (ticking) return; // never overlap renew rounds
    ticking = true;
    try {
      const was = elector.leader;
      const leader = await elector.tick();
      if (leader && !was) {
        log("info", "became leader; starting reconcile", { identity });
        await ctl.startLeading();
        if (prom) promTimer = setInterval(() => prom.poll().catch((e) => log("warn", "prometheus poll failed", { error: (e as Error).message })), duration("--prometheus-interval", f.prometheusInterval));
      } else if (!leader && was) {
        log("warn", "lost leadership; reconcile stopped, still serving", { identity });
        ctl.stopLeading();
        if (promTimer) { clearInterval(promTimer); promTimer = null; }
      }
    } finally { ticking = false; }
  };
  await loop();
  const timer = setInterval(() => loop().catch((e) => log("error", "leader loop failed", { error: (e as Error).message })), retryMs);
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

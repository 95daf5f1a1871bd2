// `meshtune controller`: collector + reconcile loop, in-cluster. Every replica watches (Ready
// after its own sync) and serves the collector; only the Lease holder reconciles and writes.
// A standby forwards each valid report to the leader (URL published on the Lease) and answers
// with the leader's answer: 202 means the report is in the leader's graph; 503 when no leader
// is reachable, so the filter keeps the data and retries. Losing the lease stops the work,
// never the process (Istio pilot/pkg/leaderelection AddRunFunction semantics).
import { DiagnoseStore } from "../diagnose/store.js";
import { runDiagnose, parseEdge } from "../diagnose/diagnose.js";
import { EdgeTimeMetric } from "../diagnose/edge-metric.js";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { hostname } from "node:os";
import { collectDefaultMetrics, Registry } from "prom-client";
import { Graph } from "../model/graph.js";
import { Collector, FORWARDED, FORWARDED_CALLER, FORWARDED_NODE } from "../collector/server.js";
import { applyServerLimits, serverOptions } from "../collector/limits.js";
import { KubeAccessReviewer } from "../k8s/access-review.js";
import { parseIdentity, selfIdentity } from "../collector/caller.js";
import { loadKubeConfig, objectApi } from "../k8s/kube.js";
import { LearnedStore } from "../k8s/learned-store.js";
import { LeaderElector } from "../k8s/leader.js";
import { MeshController, statusOf, type ControllerOptions } from "../reconcile/controller.js";
import { boundedGraph, page, READ_BOUNDS } from "../reconcile/read-view.js";
import { PrometheusSource } from "../sources/prometheus.js";
import { jsonLogger as log } from "../log.js";
import { UserError } from "../errors.js";
import { DEFAULT_SCOPE } from "../sidecar/scope.js";
import { checkScopeFlags, qualifyServiceHost } from "./scope-flags.js";
import { duration } from "./common-flags.js";
export { duration };
import { unlearnedMode } from "../istio/egress-proxy.js";
import { TUNE_KINDS, type TuneKind } from "../tune/apply.js";
import { dashboardHtml } from "../ui/html.js";
import { controllerDashboard } from "../ui/controller-dashboard.js";

export interface ControllerFlags {
  port: string;
  kubeconfig?: string;
  mode: string;
  dryRun?: boolean;
  defaultEnabled?: boolean;
  minWindow: string;
  retention: string;
  fallbackHost: string;
  fallbackPort: string;
  alwaysInclude: string[];
  leaseNamespace: string;
  prometheus?: string;
  prometheusInterval: string;
  clusterDomain: string;
  collectorHost: string;
  meshConfigMap: string;
  advertiseUrl?: string;
  leaseDuration: string;
  renewDeadline: string;
  retryPeriod: string;
  applyTuning?: string[];
  tuneInterval?: string;
  maxRollouts?: string;
  istioVersion?: string;
  /** auto | egress-proxy | passthrough (controller/istio/egress-proxy.ts). */
  unlearned?: string;
  tuneMinRequests?: string;
  identity?: string;
  tokenPort: string;
  insecureCollector?: boolean;
  self?: string;
  reportRate: string;
  flushDelay: string;
  relistInterval: string;
  fallbackIdentity: string;
  agentIdentity: string;
}

/** "90s", "15m", "2h", "7d" → ms. */
/** --apply-tuning and its companions; tuning is applied only in --mode apply. */
export function tuningFlags(
  f: Pick<ControllerFlags, "applyTuning" | "tuneInterval" | "maxRollouts" | "istioVersion" | "tuneMinRequests">,
  mode: string,
): Partial<ControllerOptions> {
  const kinds = f.applyTuning ?? [];
  for (const k of kinds)
    if (!TUNE_KINDS.includes(k as TuneKind))
      throw new UserError(`--apply-tuning ${k}: expected a list of ${TUNE_KINDS.join(", ")}`, 2);
  if (kinds.length && mode !== "apply")
    throw new UserError("--apply-tuning needs --mode apply (recommend mode writes nothing)", 2);
  const v = /^(\d+)\.(\d+)$/.exec(f.istioVersion ?? "1.25");
  if (!v) throw new UserError(`--istio-version ${f.istioVersion}: expected MAJOR.MINOR like 1.27`, 2);
  const maxRollouts = Number(f.maxRollouts ?? "5"),
    minReq = Number(f.tuneMinRequests ?? "100");
  if (!Number.isInteger(maxRollouts) || maxRollouts < 0)
    throw new UserError(`--max-rollouts ${f.maxRollouts}: expected a whole number ≥ 0`, 2);
  if (!Number.isInteger(minReq) || minReq < 1)
    throw new UserError(`--tune-min-requests ${f.tuneMinRequests}: expected a positive whole number`, 2);
  return {
    applyTuning: kinds as TuneKind[],
    tuneIntervalMs: duration("--tune-interval", f.tuneInterval ?? "10m"),
    maxRollouts,
    istioVersion: [Number(v[1]), Number(v[2])],
    tuneMinRequests: minReq,
  };
}

export async function runController(f: ControllerFlags): Promise<void> {
  const iv = /^(\d+)\.(\d+)$/.exec(f.istioVersion ?? "1.25");
  if (!iv) throw new UserError(`--istio-version ${f.istioVersion}: expected MAJOR.MINOR like 1.27`, 2);
  const unlearned = unlearnedMode(f.unlearned ?? "auto", [Number(iv[1]), Number(iv[2])]);
  f = {
    ...f,
    fallbackHost: qualifyServiceHost("--fallback-host", f.fallbackHost, f.clusterDomain),
    collectorHost: qualifyServiceHost("--collector-host", f.collectorHost, f.clusterDomain),
  };
  if (f.mode !== "apply" && f.mode !== "recommend")
    throw new UserError(`--mode ${f.mode}: expected apply or recommend`, 2);
  const opts: ControllerOptions = {
    mode: f.mode,
    dryRun: !!f.dryRun,
    defaultEnabled: !!f.defaultEnabled,
    clusterDomain: f.clusterDomain,
    minWindowMs: duration("--min-window", f.minWindow),
    retentionMs: duration("--retention", f.retention),
    fallback: unlearned.mode === "egress-proxy" ? { host: f.fallbackHost, port: Number(f.fallbackPort) } : null,
    meshConfigMap: f.meshConfigMap,
    scope: {
      ...DEFAULT_SCOPE,
      alwaysInclude: f.alwaysInclude,
      clusterDomain: f.clusterDomain,
      meshtuneHosts: [f.collectorHost, f.fallbackHost],
      fallbackHosts: [f.fallbackHost],
    },
  };
  Object.assign(opts, tuningFlags(f, opts.mode));
  checkScopeFlags(f.alwaysInclude, [
    ["--collector-host", f.collectorHost],
    ["--fallback-host", f.fallbackHost],
  ]);
  const leaseMs = duration("--lease-duration", f.leaseDuration),
    renewMs = duration("--renew-deadline", f.renewDeadline),
    retryMs = duration("--retry-period", f.retryPeriod);
  if (!(retryMs < renewMs && renewMs < leaseMs))
    throw new UserError("leader election needs --retry-period < --renew-deadline < --lease-duration", 2);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "meshtune_" });
  const kc = loadKubeConfig({ file: f.kubeconfig });
  const api = objectApi(kc);
  const graph = new Graph();
  const self = selfIdentity(f.self, "meshtune-system/meshtune-controller");
  if (f.insecureCollector)
    log(
      "warn",
      "INSECURE COLLECTOR: reports and reads are accepted from anyone, unauthenticated (--insecure-collector is for tests only)",
      {},
    );
  const reportRate = Number(f.reportRate);
  if (!(reportRate > 0))
    throw new UserError(`--report-rate ${f.reportRate}: expected reports per second per identity (> 0)`, 2);
  const fallbackId = parseIdentity(f.fallbackIdentity);
  if (!fallbackId)
    throw new UserError(`--fallback-identity ${f.fallbackIdentity}: expected NAMESPACE/SERVICEACCOUNT`, 2);
  const agentId = parseIdentity(f.agentIdentity);
  if (!agentId) throw new UserError(`--agent-identity ${f.agentIdentity}: expected NAMESPACE/SERVICEACCOUNT`, 2);
  // The controller must be known before the collector can bind callers to workloads.
  // eslint-disable-next-line prefer-const -- assigned below, after the collector that closes over it
  let ctl!: MeshController;
  const collector = new Collector(graph, registry, {
    auth: f.insecureCollector ? null : { self, reviewer: new KubeAccessReviewer(kc) },
    bind: (c, ns, w) => ctl.bindCaller(c, ns, w),
    index: () => ctl.hostIndex(),
    clusterDomain: f.clusterDomain,
    limits: { ratePerSecond: reportRate, burst: Math.max(1, Math.ceil(reportRate * 2)) },
    fallbackIdentity: fallbackId,
    mergeFallback: (r) => ctl.mergeFallback(r),
    agentIdentity: agentId,
    mergeAgent: (r) => ctl.mergeAgent(r),
  });
  ctl = new MeshController(
    kc,
    api,
    graph,
    new LearnedStore(api, log),
    {
      ...opts,
      flushDelayMs: duration("--flush-delay", f.flushDelay),
      relistMs: duration("--relist-interval", f.relistInterval),
    },
    log,
    registry,
  );
  collector.onMerged = (ns, w) => ctl.touched(ns, w);
  // A full graph evicts workloads no live pod backs (after the informers synced).
  graph.backed = (key) => !ctl.ready || ctl.pods.has(key);
  // Stable across container restarts (the pod name), so a restarted leader re-acquires its own
  // lease at once instead of waiting for it to expire.
  // Diagnose: both ends' timings and the agents' kernel signals, in 1-minute windows for an hour.
  const diagnoseStore = new DiagnoseStore();
  collector.diagnose = diagnoseStore;
  ctl.diagnose = diagnoseStore;
  // Named per edge: its own registry, behind the read authorisation (never on the open /metrics).
  const edgeRegistry = new Registry();
  const edgeTime = new EdgeTimeMetric(edgeRegistry);
  const edgeTimer = setInterval(() => edgeTime.observeWindow(diagnoseStore), diagnoseStore.windowMs);
  edgeTimer.unref();
  const identity = f.identity ?? process.env.POD_NAME ?? `${hostname()}-${process.pid}`;
  const advertise =
    f.advertiseUrl ?? (process.env.POD_IP ? `http://${process.env.POD_IP}:${f.port}` : `http://127.0.0.1:${f.port}`);
  const elector = new LeaderElector(api, {
    namespace: f.leaseNamespace,
    name: "meshtune-controller",
    identity,
    leaseDurationMs: leaseMs,
    renewDeadlineMs: renewMs,
    collectorUrl: advertise,
  });
  collector.relay = async (body, caller, forwarded) => {
    if (elector.leader) {
      // Fenced: a leader that cannot confirm its lease (API partition) answers retryably rather
      // than 202 for state it may never be able to save.
      if (!elector.sure()) return { status: 503, text: "leadership unconfirmed (lease renewal failing); retry" };
      return null; // merge here
    }
    // Never forward to ourselves (a lease lost through API errors can still name this replica).
    if (forwarded || !elector.leaderUrl || elector.leaderUrl === advertise)
      return { status: 503, text: "no leader known to accept the report; retry" };
    // Through this pod's sidecar (mTLS): the leader sees this replica's identity and trusts the caller header from it.
    const headers: Record<string, string> = { "content-type": "application/json", [FORWARDED]: identity };
    if (caller) headers[FORWARDED_CALLER] = `${caller.namespace}/${caller.serviceAccount}`;
    if (caller?.node) headers[FORWARDED_NODE] = caller.node;
    const r = await fetch(`${elector.leaderUrl}/v1/reports`, {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(5000),
    });
    return { status: r.status, text: await r.text() };
  };

  /** A read of the dependency map: only for an authorised reader (mesh identity or token, then RBAC); a refusal is counted. */
  // Reads build views of the graph: at most two at once (each bounded by READ_BOUNDS), the rest
  // are told to retry rather than multiplying the heap.
  let reading = 0;
  const read = (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    serve: (q: URLSearchParams) => void | Promise<void>,
  ) => {
    collector
      .authorizeRead(req, path)
      .then(async (deny) => {
        if (deny) {
          collector.count(deny[1]);
          return void res.writeHead(deny[0], { "content-type": "text/plain" }).end(`${deny[1]}: ${deny[2]}\n`);
        }
        if (reading >= 2) {
          collector.count("busy");
          return void res
            .writeHead(503, { "content-type": "text/plain", "retry-after": "1" })
            .end("busy: two reads are being served; retry\n");
        }
        reading++;
        try {
          await serve(new URL(req.url!, "http://x").searchParams);
        } finally {
          reading--;
        }
      })
      .catch((e) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(`${(e as Error).message}\n`);
      });
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === "/healthz") return void res.writeHead(200).end("ok\n");
    // Ready after this replica's own informer sync, leader or not (a 2-replica rollout completes).
    if (req.url === "/readyz") {
      // Readiness never fails on it, but says why mesh reports are being refused (a mesh setting).
      const warn = collector.unexpectedSource ? `warning: ${collector.unexpectedSource}\n` : "";
      return void res
        .writeHead(ctl.ready ? 200 : 503)
        .end((ctl.ready ? "ready\n" : "waiting for initial sync\n") + warn);
    }
    // The recommend-only / dry-run report: each workload's decision and its Sidecar. It is the
    // dependency map, so it needs an authorised reader (mesh identity or token, then RBAC).
    // `tuning`: mesh rules, sidecar resources, discovery scope, CryptoMB (?istioVersion=1.27&minRequests=100).
    if ((req.url === "/recommendations" || req.url?.startsWith("/recommendations?")) && req.method === "GET") {
      read(req, res, "/recommendations", (q) => {
        const v = /^(\d+)\.(\d+)$/.exec(q.get("istioVersion") ?? "1.25"),
          minRequests = Number(q.get("minRequests") ?? "100");
        if (!v || !Number.isInteger(minRequests) || minRequests < 1)
          return void res
            .writeHead(400, { "content-type": "text/plain" })
            .end("bad-query: istioVersion MAJOR.MINOR, minRequests a positive integer\n");
        // Bounded (issue 23): workloads paged (?limit, ?continue), tuning over the busiest
        // workloads up to READ_BOUNDS; what was left out is stated in `truncated`.
        const p = page([...ctl.decisions], q.get("limit"), q.get("continue"));
        if (typeof p === "string")
          return void res.writeHead(400, { "content-type": "text/plain" }).end(`bad-query: ${p}\n`);
        const view = boundedGraph(ctl.graph);
        const only = view.truncated ? new Set(view.graph.nodes.keys()) : undefined;
        const tuning = ctl.tuning(
          { istioVersion: [Number(v[1]), Number(v[2])], minRequests },
          ctl.savingsNow(only),
          view.graph,
        );
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({
            mode: opts.mode,
            dryRun: opts.dryRun,
            workloads: p.items.map(([w, d]) => statusOf(w, d)),
            continue: p.continue,
            total: p.total,
            limit: p.limit,
            truncated: view.truncated,
            tuning,
            tuningApplied: { kinds: opts.applyTuning ?? [], outcomes: ctl.tuneOutcomes },
          }),
        );
      });
      return;
    }
    // The dashboard. /ui/ is the page's code only (no cluster data; a browser cannot attach a
    // token to a navigation); everything it shows comes from /api/dashboard, which needs the same
    // reader as /recommendations (the page asks for a bearer token when refused).
    if ((req.url === "/ui" || req.url === "/ui/" || req.url?.startsWith("/ui/?")) && req.method === "GET") {
      if (req.url === "/ui") return void res.writeHead(301, { location: "/ui/" }).end();
      try {
        return void res
          .writeHead(200, {
            "content-type": "text/html; charset=utf-8",
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
          })
          .end(dashboardHtml(null));
      } catch (e) {
        return void res.writeHead(500, { "content-type": "text/plain" }).end(`${(e as Error).message}\n`);
      }
    }
    if (req.url === "/api/dashboard" && req.method === "GET") {
      read(req, res, "/api/dashboard", async () => {
        const d = await controllerDashboard(ctl, collector, {
          domain: f.clusterDomain,
          mode: opts.dryRun ? `${opts.mode}, dry-run` : opts.mode,
          istioVersion: opts.istioVersion ?? [1, 25],
          minRequests: opts.tuneMinRequests ?? 100,
        });
        res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(d));
      });
      return;
    }
    // Per-edge time histograms (names workloads and hosts): Prometheus scrapes it with a reader's token.
    if (req.url === "/api/metrics/edges" && req.method === "GET") {
      read(req, res, "/api/metrics/edges", async () => {
        const body = await edgeRegistry.metrics();
        res.writeHead(200, { "content-type": edgeRegistry.contentType }).end(body);
      });
      return;
    }
    // Latency attribution per edge (meshtune diagnose --server): same readers as /recommendations.
    if (req.url?.startsWith("/api/diagnose") && req.method === "GET") {
      read(req, res, "/api/diagnose", (q) => {
        let sinceMs: number;
        try {
          sinceMs = duration("since", q.get("since") ?? "15m");
          if (q.get("edge")) parseEdge(q.get("edge")!);
        } catch (e) {
          return void res.writeHead(400, { "content-type": "text/plain" }).end(`bad-query: ${(e as Error).message}\n`);
        }
        const now = Date.now();
        const edges = runDiagnose(diagnoseStore, {
          fromMs: now - sinceMs,
          toMs: now,
          workload: q.get("workload") ?? undefined,
          edge: q.get("edge") ?? undefined,
        });
        // Bounded like the other reads: the busiest edges, and how many were left out.
        const max = READ_BOUNDS.maxEdges / 10;
        const shown = edges.length > max ? [...edges].sort((a, b) => b.requests - a.requests).slice(0, max) : edges;
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({
            sinceMs,
            edges: shown,
            truncated: shown.length < edges.length ? { shown: shown.length, total: edges.length } : null,
          }),
        );
      });
      return;
    }
    collector.handle(req, res);
  };
  // Two listeners, one handler: --port behind the sidecar (mesh identities), --token-port
  // excluded from interception (traffic.sidecar.istio.io/excludeInboundPorts) for callers off
  // the mesh with Kubernetes tokens (node agents on the host network, port-forwards).
  const servers: Server[] = [];
  for (const port of [f.port, f.tokenPort].filter((p, i, a) => Number(p) > 0 && a.indexOf(p) === i)) {
    const s = createServer(serverOptions, handler);
    // Per-source caps on the token port only: there each source is a caller; behind the sidecar all are 127.0.0.6.
    applyServerLimits(s, collector.limits, (r) => collector.count(r), port === f.tokenPort && port !== f.port);
    await new Promise<void>((r, j) => {
      s.once("error", j);
      s.listen(Number(port), "0.0.0.0", r);
    });
    servers.push(s);
  }
  log("info", "meshtune controller listening", {
    port: Number(f.port),
    tokenPort: Number(f.tokenPort),
    mode: opts.mode,
    dryRun: opts.dryRun,
    identity,
    self: `${self.namespace}/${self.serviceAccount}`,
  });

  const prom = f.prometheus ? new PrometheusSource(f.prometheus, graph, (ns, w) => ctl.touched(ns, w), log) : null;
  let promTimer: NodeJS.Timeout | null = null;
  // Every replica syncs its informers and becomes Ready on its own, leader or not.
  ctl.start().then(
    () => log("info", "informers synced; ready", { identity }),
    (e) => log("error", "initial sync failed", { error: (e as Error).message }),
  );
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
        if (prom)
          promTimer = setInterval(
            () => prom.poll().catch((e) => log("warn", "prometheus poll failed", { error: (e as Error).message })),
            duration("--prometheus-interval", f.prometheusInterval),
          );
      } else if (!leader && was) {
        log("warn", "lost leadership; reconcile stopped, still serving", { identity });
        ctl.stopLeading();
        if (promTimer) {
          clearInterval(promTimer);
          promTimer = null;
        }
      }
    } finally {
      ticking = false;
    }
  };
  await loop();
  const timer = setInterval(
    () => loop().catch((e) => log("error", "leader loop failed", { error: (e as Error).message })),
    retryMs,
  );
  const shutdown = async () => {
    clearInterval(timer);
    if (promTimer) clearInterval(promTimer);
    await ctl.stop(); // flushes learned state while still leader
    await elector.release(); // hand over now: the next replica need not wait for expiry
    for (const s of servers) s.close();
    process.exit(0);
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  await new Promise(() => {}); // runs until a signal
}

// `meshtune agent`: the node DaemonSet's command. Loads the eBPF datapath once for the node's
// kubepods cgroup (idempotent; pinned, so restarts and upgrades of the agent never drop a
// connection), keeps its pod maps equal to this node's meshed pods (pods watched with
// fieldSelector spec.nodeName), reports connect-time L4 edges to the collector, and serves
// /healthz, /readyz, /metrics. It never unloads on exit: `meshtune bpf unload` does that.
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { Registry, collectDefaultMetrics } from "prom-client";
import { agentProcessMetrics } from "../metrics.js";
import { CoreV1Api, type V1Namespace, type V1Pod } from "@kubernetes/client-node";
import { loadKubeConfig } from "../k8s/kube.js";
import { watchResource } from "../k8s/informer.js";
import { listenAdmin } from "../k8s/admin-server.js";
import { jsonLogger as log } from "../log.js";
import { UserError } from "../errors.js";
import { duration } from "./common-flags.js";
import { loadDatapath, PodMaps } from "../agent/datapath.js";
import { SpliceGateWatch } from "../agent/splice-gate.js";
import type { DatapathFlags } from "./bpf.js";
import { NodeAgent } from "../agent/node-agent.js";
import { TokenFile } from "../collector/token-file.js";
import { postReport } from "../collector/post-report.js";
import type { AgentReport } from "../collector/agent-report.js";
import { KernelSignals, loadTcpStats } from "../agent/kernel-signals.js";
import { objectApi } from "../k8s/kube.js";
import { gatherNodeInputs, evaluate, type NodeFeatures, type Verdict } from "../node/features.js";
import { publishNodeFeatures } from "../node/publish.js";
import { runProbe } from "../node/probe.js";

/** The cgroup v2 mount holding `cgroup` (its path up to the first dir without cgroup.events). */
function cgroupUnifiedRoot(cgroup: string): string {
  let d = cgroup;
  while (existsSync(`${dirname(d)}/cgroup.events`)) d = dirname(d);
  return dirname(d);
}
/** A v1 controller hierarchy on hybrid nodes (cpu/memory not on the unified one), if mounted. */
function v1Root(controller: "cpu" | "memory"): string | undefined {
  const names = controller === "cpu" ? ["cpu", "cpu,cpuacct"] : ["memory"];
  for (const n of names) if (existsSync(`/sys/fs/cgroup/${n}/tasks`)) return `/sys/fs/cgroup/${n}`;
  return undefined;
}

export interface AgentFlags extends DatapathFlags {
  node?: string;
  kubeconfig?: string;
  cgroup?: string;
  proc: string;
  collector?: string;
  tokenFile?: string;
  reportInterval: string;
  recheckInterval: string;
  resync: string;
  metricsPort: string;
  noKernelSignals?: boolean;
  /** commander's --no-ambient-dns: false when given. */
  ambientDns?: boolean;
  ztunnelNamespace?: string;
  namespace?: string;
  sys: string;
}

const port = (flag: string, v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UserError(`${flag} ${v}: not a port`, 2);
  return n;
};

/** The kubepods cgroup: the flag, else the systemd or cgroupfs driver's default location. */
function kubepods(flag?: string): string {
  if (flag) return flag;
  for (const c of ["/sys/fs/cgroup/kubepods.slice", "/sys/fs/cgroup/kubepods"]) if (existsSync(c)) return c;
  throw new UserError(
    "no kubepods cgroup at /sys/fs/cgroup/kubepods.slice or /sys/fs/cgroup/kubepods: pass --cgroup",
    2,
  );
}

/**
 * Publish the node's features; an API error is logged and retried, never fatal. Call again when
 * they change: publishes run one at a time, each sends the latest features, and a failed one is
 * retried only while nothing newer is waiting.
 */
function featurePublisher(kc: ReturnType<typeof loadKubeConfig>, node: string, namespace: string, retryMs = 30_000) {
  const api = objectApi(kc);
  let latest: NodeFeatures | null = null,
    chain: Promise<void> = Promise.resolve();
  const once = async (): Promise<void> => {
    const feats = latest;
    if (!feats) return;
    try {
      const r = await publishNodeFeatures(api, node, namespace, feats);
      if (latest === feats) latest = null;
      log("info", "node features published", { node, labels: r.labels });
    } catch (e) {
      log("warn", "publishing node features failed; retrying", { node, error: (e as Error).message?.slice(0, 300) });
      setTimeout(() => (chain = chain.then(once)), retryMs).unref();
    }
  };
  return (feats: NodeFeatures) => {
    latest = feats;
    chain = chain.then(once);
  };
}

export async function runAgent(f: AgentFlags): Promise<void> {
  const node = f.node ?? process.env.NODE_NAME;
  if (!node) throw new UserError("--node (or $NODE_NAME from the downward API) is required", 2);
  const cgroup = kubepods(f.cgroup);
  const proxyPort = port("--proxy-port", f.proxyPort),
    resyncMs = duration("--resync", f.resync),
    reportMs = duration("--report-interval", f.reportInterval),
    recheckMs = duration("--recheck-interval", f.recheckInterval);
  // Each drives a timer: zero would spin.
  for (const [flag, ms] of [
    ["--resync", resyncMs],
    ["--report-interval", reportMs],
    ["--recheck-interval", recheckMs],
  ] as const)
    if (ms <= 0) throw new UserError(`${flag}: must be longer than 0`, 2);
  const token = f.tokenFile ? new TokenFile(f.tokenFile) : null;
  const kc = loadKubeConfig({ file: f.kubeconfig });
  const core = kc.makeApiClient(CoreV1Api);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "meshtune_" });

  // Node features first: the datapath and the TCP probes start only where their checks pass,
  // and the node says which feature failed and why (labels + status ConfigMap, published below).
  let nodeLabels: Record<string, string> = {};
  try {
    nodeLabels = ((await core.readNode({ name: node })).metadata?.labels ?? {}) as Record<string, string>;
  } catch (e) {
    log("warn", "reading this Node failed; NFD labels not consulted", { error: (e as Error).message });
  }
  const feats = evaluate(
    gatherNodeInputs({ proc: f.proc, sys: f.sys, probe: () => runProbe(cgroup), labels: nodeLabels }),
  );
  const { featureEnabled: enabled, reports } = agentProcessMetrics(registry, async () => {
    const r = await maps.send("counters");
    return r.ok ? (r.counters as Record<string, number>) : null;
  });
  enabled.set({ feature: "datapath" }, feats.datapath.ok ? 1 : 0);
  enabled.set({ feature: "tcpstats" }, feats.datapath.ok && feats.tcpstats.ok && !f.noKernelSignals ? 1 : 0);
  enabled.set({ feature: "cryptomb" }, feats.cryptomb.capable ? 1 : 0);
  const publish = featurePublisher(kc, node, f.namespace ?? process.env.POD_NAMESPACE ?? "meshtune-system");
  if (!feats.datapath.ok) {
    publish(feats);
    // Nothing is loaded; pods on this node keep Istio's iptables capture.
    log("warn", `datapath disabled on this node: ${feats.datapath.reason}`, { node });
    const admin = await listenAdmin(Number(f.metricsPort), registry, () => null);
    log("info", "meshtune agent running without datapath", {
      node,
      metricsPort: (admin.address() as { port: number }).port,
    });
    return;
  }
  let loaded: Record<string, unknown>;
  try {
    loaded = loadDatapath(cgroup, f);
  } catch (e) {
    publish(feats); // what the node supports, though this load failed
    throw e;
  }
  log("info", "datapath loaded", { node, ...loaded });
  // Kernel TCP signals for diagnose: optional, the datapath works without them.
  let kernel: KernelSignals | null = null;
  if (!f.noKernelSignals && !feats.tcpstats.ok)
    log("warn", `kernel TCP probes disabled on this node: ${feats.tcpstats.reason}`, { node });
  else if (!f.noKernelSignals) {
    try {
      log("info", "kernel TCP probes loaded", loadTcpStats(cgroup));
      kernel = new KernelSignals({
        unified: cgroupUnifiedRoot(cgroup),
        cpuV1: v1Root("cpu"),
        memoryV1: v1Root("memory"),
        proc: f.proc,
      });
    } catch (e) {
      log("warn", "kernel TCP probes unavailable; diagnose gets no kernel evidence from this node", {
        error: (e as Error).message,
      });
    }
  }

  const maps = new PodMaps();
  const agent = new NodeAgent(
    maps,
    {
      cgroupRoot: cgroup,
      procRoot: f.proc,
      proxyPort,
      ambient: loaded.ambient === true,
      ambientDns: f.ambientDns !== false,
      ztunnelNamespace: f.ztunnelNamespace,
      cpuRoots: { unified: cgroupUnifiedRoot(cgroup), cpuV1: v1Root("cpu") },
    },
    registry,
    log,
  );
  if (loaded.ambient !== true)
    log("warn", `ambient capture disabled on this node: ${feats.ambient.reason}; istio-cni keeps ambient pods`, {
      node,
    });
  agent.onRelease = (id) => kernel?.forget(id);
  await agent.adopt();
  let stopped = false,
    ready = false;
  const fieldSelector = `spec.nodeName=${node}`;
  const w = watchResource<V1Pod>(
    kc,
    `/api/v1/pods?fieldSelector=${encodeURIComponent(fieldSelector)}`,
    () => core.listPodForAllNamespaces({ fieldSelector }),
    (t, p) => agent.podChanged(t, p),
    log,
    () => stopped,
    "Pod",
  );
  // Namespace labels enrol ambient pods (istio.io/dataplane-mode): a change resyncs every pod.
  const nsw = watchResource<V1Namespace>(
    kc,
    "/api/v1/namespaces",
    () => core.listNamespace(),
    (t, ns) => {
      agent.namespaceChanged(t, ns);
      if (ready) void tick();
    },
    log,
    () => stopped,
    "Namespace",
  );
  let syncing: Promise<void> = Promise.resolve();
  const tick = (initial = false) =>
    (syncing = syncing.then(() => agent.sync(initial)).catch((e) => log("warn", "sync failed", { error: String(e) })));
  Promise.all([w.synced, nsw.synced]).then(async () => {
    await tick(true);
    ready = true;
    log("info", "pods synced; ready", { node });
  });
  // The kernel closes the splice gate on its own (another program's psock), the recheck when a
  // program of others appears after load; the node says so. Published once the gate has been read,
  // so a restart with the gate closed never says "on" first.
  const splicing = feats.datapath.ok && feats.splice.ok && loaded.splice !== false;
  const loadedFeats: NodeFeatures =
    feats.splice.ok && loaded.splice === false
      ? { ...feats, splice: { ok: false, reason: String(loaded.spliceOff || "loaded without splicing (--no-splice)") } }
      : feats;
  enabled.set({ feature: "splice" }, splicing ? 1 : 0);
  let gateClosed: Verdict | null = null,
    starting = true;
  const gate = new SpliceGateWatch(
    (l) => maps.send(l),
    (v) => {
      if (v.ok) log("info", "sockmap splice back on: the splice gate was reopened", { node });
      else log("warn", `sockmap splice off on this node: ${v.reason}`, { node });
      enabled.set({ feature: "splice" }, v.ok ? 1 : 0);
      gateClosed = v.ok ? null : v;
      if (!starting) publish(gateClosed ? { ...loadedFeats, splice: gateClosed } : loadedFeats);
    },
    (what) => log("warn", `program of others found after load: ${what}`, { node }),
  );
  const watchGate = (look: () => Promise<void>) =>
    splicing ? look().catch((e) => log("warn", "reading the splice gate failed", { error: String(e) })) : undefined;
  await watchGate(() => gate.check()); // closed before this agent started: say so in the first publish
  starting = false;
  publish(gateClosed ? { ...loadedFeats, splice: gateClosed } : loadedFeats);
  const syncTimer = setInterval(() => {
    if (ready) void tick();
    void watchGate(() => gate.check());
  }, resyncMs);
  const recheckTimer = setInterval(() => void watchGate(() => gate.recheck()), recheckMs);

  const report = async () => {
    if (!f.collector || !ready) return;
    let p, k;
    try {
      p = await agent.pendingReport(node);
    } catch (e) {
      reports.inc({ outcome: "failed" });
      return log("warn", "reading L4 edges failed", { error: (e as Error).message });
    }
    try {
      k = kernel?.pending(agent.meshedPods());
    } catch (e) {
      log("warn", "reading kernel signals failed", { error: (e as Error).message });
    }
    if (!p && !k?.section.pods.length) return;
    const body: AgentReport = {
      ...(p?.report ?? { v: 2, kind: "agent", node, pods: [] }),
      ...(k?.section.pods.length ? { kernel: k.section } : {}),
    };
    const r = await postReport(f.collector, body, token?.headers() ?? {}, undefined, token?.reauth);
    if (r.outcome === "accepted") {
      p?.commit();
      k?.commit();
      reports.inc({ outcome: "accepted" });
      return;
    }
    reports.inc({ outcome: r.outcome === "refused" ? "refused" : "failed" });
    log("warn", "collector did not accept the L4 report; its edges stay for the next one", {
      outcome: r.outcome,
      detail: r.detail.slice(0, 200),
    });
  };
  // One report at a time: two in flight would both carry the same uncommitted edges and kernel
  // deltas, and both commits would count them twice.
  let reporting = false;
  const reportTimer = setInterval(() => {
    if (reporting) return;
    reporting = true;
    void report().finally(() => {
      reporting = false;
    });
  }, reportMs);

  const admin = await listenAdmin(Number(f.metricsPort), registry, () => (ready ? null : "waiting for the pod list"));
  log("info", "meshtune agent running", { node, cgroup, metricsPort: (admin.address() as { port: number }).port });
  const shutdown = async () => {
    stopped = true;
    clearInterval(syncTimer);
    clearInterval(recheckTimer);
    clearInterval(reportTimer);
    await syncing;
    await report();
    maps.close();
    admin.close();
    process.exit(0); // the datapath stays loaded: pods keep their capture while no agent runs
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

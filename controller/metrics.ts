// Every Prometheus metric meshtune exports, declared here and nowhere else: one place to read the
// names, labels and help texts a dashboard or alert depends on. Each component asks for its set
// with the registry it serves them from (the controller's /metrics, the agent's, the fallback's,
// the authorised-only /api/metrics/edges registry).
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** The controller's reconcile loop; `workloads` is read at scrape time. */
export function controllerMetrics(registry: Registry, workloads: () => number) {
  new Gauge({
    name: "meshtune_workloads",
    help: "Workloads known from pods",
    registers: [registry],
    collect() {
      this.set(workloads());
    },
  });
  return {
    reconciled: new Counter({
      name: "meshtune_reconcile_total",
      help: "Reconcile outcomes",
      labelNames: ["action"] as const,
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: "meshtune_reconcile_errors_total",
      help: "Reconcile failures (retried)",
      registers: [registry],
    }),
    tuneApplied: new Counter({
      name: "meshtune_tuning_apply_total",
      help: "Opted-in tuning outcomes per object (applied, unchanged, skipped with a reason, deleted, withdrawn, failed)",
      labelNames: ["kind", "action"] as const,
      registers: [registry],
    }),
    saveErrors: new Counter({
      name: "meshtune_learned_save_errors_total",
      help: "Failed learned-state saves (each is retried with backoff)",
      registers: [registry],
    }),
    rejectedHosts: new Counter({
      name: "meshtune_hosts_rejected_total",
      help: "Candidate Sidecar hosts that failed Istio validation (never applied)",
      registers: [registry],
    }),
  };
}

/** The collector (reports from filters, the fallback and node agents). */
export function collectorMetrics(registry: Registry) {
  return {
    forwarded: new Counter({
      name: "meshtune_reports_forwarded_total",
      help: "Reports a standby forwarded to the leader and the leader accepted",
      registers: [registry],
    }),
    received: new Counter({
      name: "meshtune_reports_received_total",
      help: "Filter reports accepted into the graph",
      registers: [registry],
    }),
    rejected: new Counter({
      name: "meshtune_reports_rejected_total",
      help: "Reports (or connections) refused, by reason",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    edgesDropped: new Counter({
      name: "meshtune_edges_dropped_total",
      help: "Edges of accepted reports that a graph cap refused, by reason",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
  };
}

/** The node agent: pod states, its reports, node features and the datapath's own counters. */
export function agentMetrics(registry: Registry) {
  return {
    pods: new Gauge({
      name: "meshtune_agent_pods",
      help: "Pods of this node by datapath state",
      labelNames: ["state"] as const,
      registers: [registry],
    }),
    skips: new Counter({
      name: "meshtune_agent_pod_skips_total",
      help: "Pods left to the kernel's normal path, by reason (counted on each change)",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    deferred: new Counter({
      name: "meshtune_agent_edges_deferred_total",
      help: "L4 edges held for a later report by the per-report cap",
      registers: [registry],
    }),
    mapErrors: new Counter({
      name: "meshtune_agent_map_errors_total",
      help: "Pod map writes the loader refused",
      registers: [registry],
    }),
  };
}

/** The agent process: what it enabled on its node, its reports, and the datapath counters read at scrape time. */
export function agentProcessMetrics(
  registry: Registry,
  datapathCounters: () => Promise<Record<string, number> | null>,
) {
  new Gauge({
    name: "meshtune_datapath_events",
    help: "eBPF datapath events since load, by reason (bpf/meshtune.h mt_reason)",
    labelNames: ["reason"],
    registers: [registry],
    async collect() {
      for (const [k, v] of Object.entries((await datapathCounters()) ?? {})) this.set({ reason: k }, v);
    },
  });
  return {
    featureEnabled: new Gauge({
      name: "meshtune_node_feature_enabled",
      help: "Node features this agent enabled (1) or refused (0)",
      labelNames: ["feature"] as const,
      registers: [registry],
    }),
    reports: new Counter({
      name: "meshtune_agent_reports_total",
      help: "L4 edge reports to the collector, by outcome",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
  };
}

/** The fallback: what it forwarded and refused, and its fast-path reports. */
export function fallbackMetrics(registry: Registry) {
  return {
    requests: new Counter({
      name: "meshtune_fallback_requests_total",
      help: "Requests (HTTP) and connections (TLS) the fallback forwarded, by outcome",
      labelNames: ["proto", "outcome"] as const,
      registers: [registry],
    }),
    refused: new Counter({
      name: "meshtune_fallback_refused_total",
      help: "Connections or requests the fallback could not or would not route, by reason",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
  };
}

export function fallbackReporterMetrics(registry: Registry) {
  return {
    sent: new Counter({
      name: "meshtune_fallback_reports_total",
      help: "Fast-path reports to the collector, by outcome",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    dropped: new Counter({
      name: "meshtune_fallback_learned_dropped_total",
      help: "Learned entries not reported, by reason",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
  };
}

/** Per-edge component times (their own, authorised-only registry: the labels name workloads). */
export function edgeTimeMetrics(registry: Registry, maxEdges: number) {
  return {
    time: new Histogram({
      name: "meshtune_edge_time_seconds",
      help: "Per-request time of each edge by component (client_proxy, network, server_proxy, app), from both proxies' timings",
      labelNames: ["component", "client", "server"] as const,
      buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers: [registry],
    }),
    dropped: new Counter({
      name: "meshtune_edge_time_observations_dropped_total",
      help: "Edge-time observations beyond the per-window cap",
      registers: [registry],
    }),
    edgesDropped: new Counter({
      name: "meshtune_edge_time_edges_dropped_total",
      help: `Edge windows not exported because ${maxEdges} edges already have series`,
      registers: [registry],
    }),
  };
}

// The controller's dashboard data (/api/dashboard): the same builder as the CLI's HTML report,
// fed from the live state — Sidecars in the cluster (applied) and the last decisions
// (recommended), the learned graph, tuning, diagnose windows, Nodes' feature labels, and the
// collector's accepted/refused report counts.
import type { MeshController } from "../reconcile/controller.js";
import type { Collector } from "../collector/server.js";
import { diagnoseWindows } from "../diagnose/diagnose.js";
import { buildDashboard, type DashboardData, type DashboardInputs } from "./dashboard-data.js";
import { limitsLine } from "../report.js";
import { boundedGraph } from "../reconcile/read-view.js";

export async function controllerDashboard(
  ctl: MeshController,
  collector: Collector,
  o: { domain: string; mode: string; istioVersion: [number, number]; minRequests: number },
): Promise<DashboardData> {
  // A bounded view of the graph (reconcile/read-view.ts): the busiest workloads, stated when cut.
  const view = boundedGraph(ctl.graph);
  const only = view.truncated ? new Set(view.graph.nodes.keys()) : null;
  const sidecars: DashboardInputs["sidecars"] = new Map();
  for (const [key, d] of ctl.decisions) {
    if (only && !only.has(key)) continue;
    const [ns, name] = key.split("/");
    const applied = ctl.sidecars.get(ns)?.get(name) ?? null;
    sidecars.set(
      key,
      d.action === "apply" || d.action === "recommend"
        ? { applied, recommended: d.sidecar, action: d.action }
        : { applied, recommended: null, action: d.action, reason: d.reason },
    );
  }
  const services = ctl.catalogNow();
  const savings = ctl.savingsNow(only ?? undefined);
  const received = (await collector.received.get()).values.reduce((a, v) => a + v.value, 0);
  const refused = Object.fromEntries(
    (await collector.rejected.get()).values.map((v) => [String(v.labels.reason), v.value]),
  );
  return buildDashboard({
    source: "controller",
    mode: o.mode,
    nowMs: Date.now(),
    graph: view.graph,
    services,
    domain: o.domain,
    sidecars,
    savings,
    tuning: ctl.tuning({ istioVersion: o.istioVersion, minRequests: o.minRequests }, savings, view.graph),
    windows: ctl.diagnose ? diagnoseWindows(ctl.diagnose) : [],
    nodes: [...ctl.nodes.values()].map((n) => ({ name: n.metadata?.name ?? "", labels: n.metadata?.labels ?? {} })),
    report: {
      inputs: [
        {
          name: "filter, fallback and agent reports (this replica's collector)",
          lines: received + Object.values(refused).reduce((a, b) => a + b, 0),
          records: received,
          bytes: 0,
          skipped: refused,
        },
      ],
      limits:
        [
          limitsLine({ dropped: ctl.graph.dropped, evicted: ctl.graph.evicted }),
          view.truncated &&
            `shown: ${view.truncated.workloads.shown} of ${view.truncated.workloads.total} workloads, ${view.truncated.edges.shown} of ${view.truncated.edges.total} edges (${view.truncated.reason})`,
        ]
          .filter(Boolean)
          .join("; ") || null,
      ...ctl.registryNotes(),
    },
  });
}

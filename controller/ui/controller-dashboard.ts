// The controller's dashboard data (/api/dashboard): the same builder as the CLI's HTML report,
// fed from the live state — Sidecars in the cluster (applied) and the last decisions
// (recommended), the learned graph, tuning, diagnose windows, Nodes' feature labels, and the
// collector's accepted/refused report counts.
import type { MeshController } from "../reconcile/controller.js";
import type { Collector } from "../collector/server.js";
import { diagnoseWindows } from "../diagnose/diagnose.js";
import { buildDashboard, type DashboardData, type DashboardInputs } from "./dashboard-data.js";
import { limitsLine } from "../report.js";

export async function controllerDashboard(
  ctl: MeshController,
  collector: Collector,
  o: { domain: string; mode: string; istioVersion: [number, number]; minRequests: number },
): Promise<DashboardData> {
  const sidecars: DashboardInputs["sidecars"] = new Map();
  for (const [key, d] of ctl.decisions) {
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
  const savings = ctl.savingsNow();
  const received = (await collector.received.get()).values.reduce((a, v) => a + v.value, 0);
  const refused = Object.fromEntries(
    (await collector.rejected.get()).values.map((v) => [String(v.labels.reason), v.value]),
  );
  return buildDashboard({
    source: "controller",
    mode: o.mode,
    nowMs: Date.now(),
    graph: ctl.graph,
    services,
    domain: o.domain,
    sidecars,
    savings,
    tuning: ctl.tuning({ istioVersion: o.istioVersion, minRequests: o.minRequests }, savings),
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
      limits: limitsLine({ dropped: ctl.graph.dropped, evicted: ctl.graph.evicted }),
      ...ctl.registryNotes(),
    },
  });
}

// `meshtune recommend … --html FILE`: the dashboard as one self-contained HTML file, from the
// same graph, Sidecars, savings and tuning as the YAML output (and, with --reports carrying
// report-v2 timings, the latency attribution per window).
import { promises as fs } from "node:fs";
import { dirname } from "node:path";
import type { Graph } from "../model/graph.js";
import type { CatalogService } from "../sidecar/catalog.js";
import type { GenerateResult } from "../sidecar/generate.js";
import type { Savings } from "../sidecar/savings.js";
import type { Tuning } from "../tune/tune.js";
import type { InputSummary, ReportData } from "../report.js";
import { limitsLine, renderReport, trustWarnings } from "../report.js";
import { buildDashboard, type DashboardInputs } from "../ui/dashboard-data.js";
import { dashboardHtml } from "../ui/html.js";
import { DiagnoseStore } from "../diagnose/store.js";
import { diagnoseWindows } from "../diagnose/diagnose.js";
import { loadSaved } from "./diagnose.js";
import { UserError, describeFsError } from "../errors.js";

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export async function writeHtmlReport(
  path: string,
  c: {
    graph: Graph;
    services: CatalogService[];
    items: Obj[];
    domain: string;
    result: GenerateResult;
    savings: Savings[] | null;
    tuning: Tuning | null;
    inputs: InputSummary[];
    /** The CLI's report: its warnings and text go into the HTML report unabridged. */
    report: ReportData;
    reports?: string;
  },
): Promise<void> {
  const sidecars: DashboardInputs["sidecars"] = new Map();
  // A Sidecar in --catalog with the workload's name is what the cluster has now ("applied").
  const existing = new Map(
    c.items.filter((o) => o?.kind === "Sidecar").map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o]),
  );
  for (const s of c.result.sidecars) {
    const k = `${s.metadata.namespace}/${s.metadata.name}`;
    sidecars.set(k, { applied: existing.get(k) ?? null, recommended: s, action: "recommend" });
  }
  for (const p of c.result.proxiesSkipped)
    sidecars.set(p.workload, { applied: null, recommended: null, action: "skip", reason: `${p.kind}: ${p.why}` });
  let windows: DashboardInputs["windows"] = [];
  if (c.reports) {
    const store = new DiagnoseStore(60_000, Number.MAX_SAFE_INTEGER, 50_000);
    await loadSaved(c.reports, undefined, store, true); // skips were already reported by the learner
    windows = diagnoseWindows(store);
  }
  const data = buildDashboard({
    source: "report",
    nowMs: Date.now(),
    graph: c.graph,
    services: c.services,
    domain: c.domain,
    sidecars,
    savings: c.savings,
    tuning: c.tuning,
    windows,
    nodes: c.items
      .filter((o) => o?.kind === "Node")
      .map((o) => ({ name: o.metadata?.name, labels: o.metadata?.labels ?? {} })),
    report: {
      inputs: c.inputs,
      limits: limitsLine({ dropped: c.graph.dropped, evicted: c.graph.evicted }),
      unregistered: c.result.unregistered,
      rejected: c.result.rejected,
      proxiesSkipped: c.result.proxiesSkipped,
      warnings: trustWarnings(c.report),
      text: renderReport(c.report),
    },
  });
  try {
    await fs.mkdir(dirname(path), { recursive: true });
    await fs.writeFile(path, dashboardHtml(data));
  } catch (e) {
    throw new UserError(`--html ${describeFsError(path, e)}`);
  }
}

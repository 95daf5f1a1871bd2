// One diagnose pass over a time range of the store: join, split, verdict; filtered the way the
// CLI and /api/diagnose ask (`--workload NS/NAME`, `--edge A->B`). Shared by both.
import { DiagnoseStore } from "./store.js";
import { joinEdges } from "./join.js";
import { type Budgets, type Diagnosis, DEFAULT_BUDGETS, diagnose } from "./verdict.js";
import { UserError } from "../errors.js";

export interface DiagnoseQuery {
  fromMs: number;
  toMs: number;
  workload?: string;
  edge?: string;
  budgets?: Budgets;
}

export function runDiagnose(store: DiagnoseStore, q: DiagnoseQuery): Diagnosis[] {
  const { edges, pods } = store.select(q.fromMs, q.toMs);
  let out = joinEdges(edges, pods).map((j) => diagnose(j, q.budgets ?? DEFAULT_BUDGETS));
  if (q.workload) out = out.filter((d) => d.client === q.workload || d.server === q.workload);
  if (q.edge) {
    const [a, b] = parseEdge(q.edge);
    out = out.filter(
      (d) => d.client === a && (d.server === b || d.host === b || d.host.split(".")[0] === b.split("/").pop()),
    );
  }
  const rank: Record<string, number> = { "node-pressure": 0, network: 1, proxy: 2, app: 3, unknown: 4, healthy: 5 };
  return out.sort((x, y) => rank[x.verdict] - rank[y.verdict] || y.requests - x.requests);
}

export function parseEdge(s: string): [string, string] {
  const m = /^([a-z0-9-]+\/[a-z0-9.-]+)->(.+)$/.exec(s.replace(/\s+/g, ""));
  if (!m) throw new UserError(`--edge ${s}: expected NS/CLIENT->NS/SERVER (or ->HOST)`, 2);
  return [m[1], m[2]];
}

const ms = (us?: number) => (us === undefined ? "-" : (us / 1000).toFixed(us >= 10_000 ? 0 : 1));

/** The `-o table` rendering: one line per edge, components as mean ms, then the rule. */
export function diagnoseTable(ds: Diagnosis[]): string {
  const rows = [["EDGE", "REQS", "TOTAL", "CLIENT-PROXY", "NETWORK", "SERVER-PROXY", "APP", "VERDICT", "RULE"]];
  for (const d of ds) {
    const c = d.components;
    rows.push([
      d.edge,
      String(d.requests),
      ms(c.total.meanUs),
      ms(c.clientProxy?.meanUs),
      ms(c.network?.meanUs ?? c.beyondClientProxy?.meanUs),
      ms(c.serverProxy?.meanUs),
      ms(c.app?.meanUs),
      d.verdict,
      d.rule,
    ]);
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (i === rows[0].length - 1 ? 0 : r[i].length))));
  return (
    rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join("  ")).join("\n") +
    "\n" +
    (ds.length ? "times: mean ms per request\n" : "no edges with traffic in the window\n")
  );
}

/** Diagnosis of each window the store holds (oldest first): the series behind the dashboard's attribution view. */
export function diagnoseWindows(store: DiagnoseStore, lastN = 60): { t: number; edges: Diagnosis[] }[] {
  return store
    .windowStarts()
    .slice(-lastN)
    .map((t) => ({ t, edges: runDiagnose(store, { fromMs: t, toMs: t + store.windowMs - 1 }) }))
    .filter((w) => w.edges.length);
}

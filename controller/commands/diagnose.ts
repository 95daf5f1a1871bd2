// `meshtune diagnose`: where each edge's time goes (client proxy, network, server proxy,
// application) and what is wrong (app | network | proxy | node-pressure | healthy), with the
// rule and the kernel evidence. Offline on saved reports (`--reports DIR [--kernel DIR]`), or
// from a running controller's /api/diagnose (`--server URL`).
import { DiagnoseStore } from "../diagnose/store.js";
import { runDiagnose, diagnoseTable, parseEdge } from "../diagnose/diagnose.js";
import type { Diagnosis } from "../diagnose/verdict.js";
import { validateReport } from "../collector/report-schema.js";
import { jsonFiles } from "../collector/report-dir.js";
import { validateAgentReport } from "../collector/agent-report.js";
import { UserError } from "../errors.js";
import { duration } from "./common-flags.js";

export interface DiagnoseFlags {
  reports?: string;
  kernel?: string;
  server?: string;
  token?: string;
  workload?: string;
  edge?: string;
  since: string;
  output: string;
}

const noEntries = async function* () {
  /* flag not given */
};

/** Saved filter and agent reports into a store; the newest time seen (offline "now"). */
export async function loadSaved(
  reports: string | undefined,
  kernel: string | undefined,
  store: DiagnoseStore,
  quiet = false,
): Promise<{ newestMs: number; skipped: number }> {
  let newestMs = 0,
    skipped = 0;
  const skip = (flag: string) => (reason: string, path: string, detail: string) => {
    skipped++;
    if (!quiet)
      process.stderr.write(
        `meshtune: ${flag} ${path}: ${reason === "malformed-json" ? "malformed JSON: " : ""}${detail}; skipped\n`,
      );
  };
  for await (const f of reports ? jsonFiles(reports, "--reports", skip("--reports")) : noEntries()) {
    const r = validateReport(f.value);
    if (!r.ok) {
      skipped++;
      if (!quiet) process.stderr.write(`meshtune: --reports ${f.path}: ${r.detail}; skipped\n`);
      continue;
    }
    const at = r.report.window.endMs || f.mtimeMs;
    store.addReport(r.report, at);
    newestMs = Math.max(newestMs, at);
  }
  for await (const f of kernel ? jsonFiles(kernel, "--kernel", skip("--kernel")) : noEntries()) {
    const r = validateAgentReport(f.value);
    if (!r.ok) {
      skipped++;
      process.stderr.write(`meshtune: --kernel ${f.path}: ${r.detail}; skipped\n`);
      continue;
    }
    if (!r.report.kernel) {
      process.stderr.write(`meshtune: --kernel ${f.path}: agent report without a kernel section; skipped\n`);
      skipped++;
      continue;
    }
    const at = r.report.kernel.endMs ?? f.mtimeMs;
    store.addKernel(r.report.node, r.report.kernel, at);
    newestMs = Math.max(newestMs, at);
  }
  return { newestMs, skipped };
}

export async function diagnoseCommand(f: DiagnoseFlags): Promise<void> {
  if (f.output !== "table" && f.output !== "json") throw new UserError(`-o ${f.output}: expected table or json`, 2);
  const sinceMs = duration("--since", f.since);
  if (f.edge) parseEdge(f.edge);
  let ds: Diagnosis[];
  if (f.server) {
    if (f.reports || f.kernel) throw new UserError("--server and --reports/--kernel are exclusive", 2);
    const u = new URL("/api/diagnose", f.server);
    u.searchParams.set("since", f.since);
    if (f.workload) u.searchParams.set("workload", f.workload);
    if (f.edge) u.searchParams.set("edge", f.edge);
    const r = await fetch(u, {
      headers: f.token ? { authorization: `Bearer ${f.token}` } : {},
      signal: AbortSignal.timeout(10_000),
    }).catch((e) => {
      throw new UserError(`--server ${f.server}: ${(e as Error).message}`);
    });
    if (!r.ok) throw new UserError(`--server ${u}: ${r.status} ${(await r.text()).trim().slice(0, 200)}`);
    ds = ((await r.json()) as { edges: Diagnosis[] }).edges;
  } else {
    if (!f.reports)
      throw new UserError("diagnose needs --reports DIR (saved filter reports) or --server URL (a controller)", 2);
    const store = new DiagnoseStore(60_000, Number.MAX_SAFE_INTEGER);
    const { newestMs } = await loadSaved(f.reports, f.kernel, store);
    ds = runDiagnose(store, { fromMs: newestMs - sinceMs, toMs: newestMs, workload: f.workload, edge: f.edge });
  }
  process.stdout.write(f.output === "json" ? JSON.stringify({ edges: ds }, null, 2) + "\n" : diagnoseTable(ds));
}

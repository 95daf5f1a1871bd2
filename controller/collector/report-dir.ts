// `recommend --reports DIR`: saved report v1 files (*.json), each validated like a POST.
import { promises as fs } from "node:fs";
import { join } from "node:path";
import type { Graph } from "../model/graph.js";
import { MAX_REPORT_BYTES, validateReport } from "./report-schema.js";
import { mergeReport } from "./merge-report.js";
import { UserError, describeFsError } from "../errors.js";
import type { InputSummary } from "../report.js";

export async function loadReportDir(dir: string, graph: Graph): Promise<InputSummary> {
  let names: string[];
  try { names = (await fs.readdir(dir)).filter((f) => f.endsWith(".json")).sort(); } catch (e) { throw new UserError(`--reports ${describeFsError(dir, e)}`); }
  const sum: InputSummary = { name: dir, lines: names.length, records: 0, bytes: 0, skipped: {} };
  const skip = (reason: string, file: string, detail: string) => {
    sum.skipped[reason] = (sum.skipped[reason] ?? 0) + 1;
    process.stderr.write(`meshtune: report ${file}: ${detail}\n`);
  };
  for (const f of names) {
    const p = join(dir, f);
    const st = await fs.stat(p);
    if (st.size > MAX_REPORT_BYTES) { skip("oversize", p, `${st.size} bytes exceeds ${MAX_REPORT_BYTES}`); continue; }
    let v: unknown;
    try { v = JSON.parse(await fs.readFile(p, "utf8")); } catch (e) { skip("malformed-json", p, (e as Error).message); continue; }
    const r = validateReport(v);
    if (!r.ok) { skip(r.reason, p, r.detail); continue; }
    mergeReport(graph, r.report);
    sum.records++;
    sum.bytes += st.size;
  }
  return sum;
}

// `recommend --reports DIR`: saved report v1 files (*.json), each validated like a POST.
import { promises as fs } from "node:fs";
import { join } from "node:path";
import type { Graph } from "../model/graph.js";
import { MAX_REPORT_BYTES, validateReport } from "./report-schema.js";
import { mergeReport } from "./merge-report.js";
import { UserError, describeFsError } from "../errors.js";
import type { InputSummary } from "../report.js";

/** Each *.json file of `dir` (sorted), parsed; oversize or malformed files go to `skip`. */
export async function* jsonFiles(
  dir: string,
  flag: string,
  skip: (reason: "oversize" | "malformed-json", path: string, detail: string) => void,
): AsyncGenerator<{ path: string; value: unknown; size: number; mtimeMs: number }> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((f) => f.endsWith(".json")).sort();
  } catch (e) {
    throw new UserError(`${flag} ${describeFsError(dir, e)}`);
  }
  for (const f of names) {
    const p = join(dir, f);
    const st = await fs.stat(p);
    if (st.size > MAX_REPORT_BYTES) {
      skip("oversize", p, `${st.size} bytes exceeds ${MAX_REPORT_BYTES}`);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(await fs.readFile(p, "utf8"));
    } catch (e) {
      skip("malformed-json", p, (e as Error).message);
      continue;
    }
    yield { path: p, value, size: st.size, mtimeMs: st.mtimeMs };
  }
}

export async function loadReportDir(dir: string, graph: Graph): Promise<InputSummary> {
  const sum: InputSummary = { name: dir, lines: 0, records: 0, bytes: 0, skipped: {} };
  const skip = (reason: string, file: string, detail: string) => {
    sum.skipped[reason] = (sum.skipped[reason] ?? 0) + 1;
    process.stderr.write(`meshtune: report ${file}: ${detail}\n`);
  };
  for await (const f of jsonFiles(dir, "--reports", skip)) {
    const r = validateReport(f.value);
    if (!r.ok) {
      skip(r.reason, f.path, r.detail);
      continue;
    }
    mergeReport(graph, r.report);
    sum.records++;
    sum.bytes += f.size;
  }
  sum.lines = sum.records + Object.values(sum.skipped).reduce((a, b) => a + b, 0);
  return sum;
}

// `meshtune recommend`: inputs → graph → Sidecars on stdout (or --out-dir), report on stderr.
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { AccessLogLearner } from "../log/learner.js";
import { fileChunks } from "../log/lines.js";
import { Graph } from "../model/graph.js";
import { generateSidecars, type SidecarObj, DEFAULT_GENERATE } from "../sidecar/generate.js";
import { validateSidecar } from "../sidecar/validate.js";
import { parseCatalog } from "../sidecar/catalog.js";
import { estimateSavings } from "../sidecar/savings.js";
import { renderReport, type InputSummary } from "../report.js";
import { UserError, describeFsError } from "../errors.js";
import { loadReportDir } from "../collector/report-dir.js";

export interface RecommendOptions {
  accessLog: string[];
  reports?: string;
  namespace?: string;
  workload?: string;
  defaultNamespace: string;
  output: "yaml" | "json";
  outDir?: string;
  catalog?: string;
  report?: string;
  alwaysInclude: string[];
  clusterDomain: string;
}

async function checkReadable(path: string): Promise<void> {
  if (path === "-") return;
  try {
    const st = await fs.stat(path);
    if (st.isDirectory()) throw Object.assign(new Error(), { code: "EISDIR" });
    await fs.access(path, fs.constants.R_OK);
  } catch (e) { throw new UserError(`--access-log ${describeFsError(path, e)}`); }
}

export async function learnAccessLogs(paths: string[], opts: Pick<RecommendOptions, "workload" | "defaultNamespace" | "clusterDomain">, graph: Graph) {
  const inputs: InputSummary[] = [];
  const inferred = new Map<string, string>();
  for (const p of paths) {
    const l = new AccessLogLearner({ workload: opts.workload, defaultNamespace: opts.defaultNamespace, clusterDomain: opts.clusterDomain });
    const stream = p === "-" ? process.stdin : fileChunks(p);
    try { await l.learnStream(stream); } catch (e) { throw new UserError(`--access-log ${describeFsError(p === "-" ? "stdin" : p, e)}`); }
    const r = l.finish(graph);
    for (const [k, v] of r.inferred) inferred.set(k, v);
    inputs.push({ name: p === "-" ? "stdin" : p, lines: l.lines, records: l.records, bytes: l.bytes, skipped: { ...l.skipped } });
  }
  return { inputs, inferred };
}

export function renderSidecars(items: SidecarObj[], output: "yaml" | "json"): string {
  if (output === "json") return JSON.stringify({ apiVersion: "v1", kind: "List", items }, null, 2) + "\n";
  return items.map((s) => stringify(s)).join("---\n");
}

export async function recommend(o: RecommendOptions): Promise<void> {
  if (o.accessLog.length === 0 && !o.reports) throw new UserError("recommend needs --access-log FILE|- or --reports DIR", 2);
  if (o.workload && !/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(o.workload)) throw new UserError(`--workload ${o.workload}: expected NAMESPACE/NAME`, 2);
  for (const p of o.accessLog) await checkReadable(p);
  let catalog = null;
  if (o.catalog) {
    let raw: string;
    try { raw = await fs.readFile(o.catalog, "utf8"); } catch (e) { throw new UserError(`--catalog ${describeFsError(o.catalog, e)}`); }
    try { catalog = parseCatalog(JSON.parse(raw), o.clusterDomain); } catch (e) { throw new UserError(`--catalog ${o.catalog}: ${(e as Error).message}`); }
  }

  const graph = new Graph();
  const { inputs, inferred } = await learnAccessLogs(o.accessLog, o, graph);
  if (o.reports) inputs.push(await loadReportDir(o.reports, graph));
  if (graph.nodes.size === 0) throw new UserError(`no access-log entries or reports found in ${inputs.map((i) => i.name).join(", ")}`);

  const result = generateSidecars(graph, { ...DEFAULT_GENERATE, alwaysInclude: o.alwaysInclude, clusterDomain: o.clusterDomain, namespace: o.namespace, workload: o.workload });
  for (const s of result.sidecars) validateSidecar(s);
  const savings = catalog ? result.sidecars.map((s) => estimateSavings(s, catalog)) : null;

  if (o.outDir) {
    await fs.mkdir(o.outDir, { recursive: true });
    for (const s of result.sidecars)
      await fs.writeFile(join(o.outDir, `${s.metadata.namespace}.${s.metadata.name}.${o.output}`), renderSidecars([s], o.output));
  } else process.stdout.write(renderSidecars(result.sidecars, o.output));

  const text = renderReport({ inputs, inferred, result, savings, dropped: graph.dropped });
  if (o.report) await fs.writeFile(o.report, text);
  else process.stderr.write(text);
}

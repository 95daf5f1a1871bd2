// `meshtune recommend`: inputs → graph → Sidecars on stdout (or --out-dir), report on stderr.
import { toYaml } from "../k8s/yaml.js";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { AccessLogLearner } from "../accesslog/learner.js";
import { PARALLEL_MIN_BYTES, learnFiles, learnParallel, shardCount } from "../accesslog/parallel.js";
import { cliEntry } from "../cli-entry.js";
import { inputChunks } from "../accesslog/lines.js";
import { Graph } from "../model/graph.js";
import { workloadOfPod } from "../model/identity.js";
import type { V1Pod } from "@kubernetes/client-node";
import { generateSidecars, type SidecarObj, DEFAULT_GENERATE, type GenerateOptions } from "../sidecar/generate.js";
import { validateSidecar } from "../sidecar/validate.js";
import { catalogItems, parseCatalog, type CatalogService } from "../sidecar/catalog.js";
import { PodCatalog } from "../sidecar/pod-catalog.js";
import { estimateSavings } from "../sidecar/savings.js";
import { inputLines, limitsLine, renderReport, type InputSummary, type ReportData } from "../report.js";
import { UserError, describeFsError } from "../errors.js";
import { loadReportDir } from "../collector/report-dir.js";
import { HostIndex } from "../istio/hosts.js";
import { DEFAULT_MESH, parseMeshConfig, type MeshConfig } from "../istio/mesh-config.js";
import { virtualServiceRefs, type VirtualServiceRef } from "../istio/virtual-services.js";
import { checkScopeFlags, qualifyServiceHost } from "./scope-flags.js";
import { unlearnedMode } from "../istio/egress-proxy.js";
import { tune } from "../tune/tune.js";
import { parseDur } from "../tune/duration.js";
import { renderDataplane } from "../tune/dataplane-advisor.js";
import { tuningParts, renderParts, type TuningParts } from "../tune/render.js";
import { proxyUsage } from "../tune/prometheus-usage.js";
import { writeHtmlReport } from "./recommend-html.js";
import { readLiveCatalog } from "./live-catalog.js";
import { diffSidecars } from "./sidecar-diff.js";

export interface RecommendOptions {
  accessLog: string[];
  reports?: string;
  namespace?: string;
  workload?: string;
  defaultNamespace: string;
  output: "yaml" | "json";
  outDir?: string;
  catalog?: string;
  meshConfig?: string;
  collectorHost: string;
  fallbackHost?: string;
  fallbackPort: string;
  /** auto | egress-proxy | passthrough (controller/istio/egress-proxy.ts). */
  unlearned?: string;
  /** `meshtune diff`: print what applying would change instead of the objects. */
  diff?: boolean;
  /** Read the catalog and mesh config from this cluster (live-catalog.ts) instead of --catalog. */
  kubeconfig?: string;
  context?: string;
  report?: string;
  alwaysInclude: string[];
  clusterDomain: string;
  strict?: boolean;
  rules?: boolean;
  resources?: boolean;
  discovery?: boolean;
  cryptomb?: boolean;
  istioVersion: string;
  minRequests: string;
  minWindow: string;
  dataplane?: boolean;
  prometheus?: string;
  prometheusWindow: string;
  /** Also write the dashboard as one self-contained HTML file. */
  html?: string;
}

async function checkReadable(path: string): Promise<void> {
  if (path === "-") return;
  try {
    const st = await fs.stat(path);
    if (st.isDirectory()) throw Object.assign(new Error(), { code: "EISDIR" });
    await fs.access(path, fs.constants.R_OK);
  } catch (e) {
    throw new UserError(`--access-log ${describeFsError(path, e)}`);
  }
}

/** Per workload, how much traffic stands behind its Sidecar; and meshed workloads with none. */
function coverageOf(graph: Graph, items: Record<string, unknown>[]) {
  const workloads = [...graph.nodes.values()]
    .filter((n) => n.proxy.kind === "sidecar")
    .map((n) => {
      let requests = 0,
        firstMs = Infinity,
        lastMs = 0;
      for (const e of [...n.edges.values(), ...n.unknown.values()]) {
        requests += e.count;
        firstMs = Math.min(firstMs, e.firstSeenMs);
        lastMs = Math.max(lastMs, e.lastSeenMs);
      }
      return { key: n.key, requests, firstMs: firstMs === Infinity ? 0 : firstMs, lastMs };
    })
    .sort((a, b) => a.key.localeCompare(b.key));
  const seen = new Set(graph.nodes.keys());
  const uncovered = new Set<string>();
  for (const o of items as V1Pod[]) {
    if ((o as { kind?: string }).kind !== "Pod" || !o.metadata?.namespace) continue;
    const injected =
      !!o.metadata.annotations?.["sidecar.istio.io/status"] ||
      [...(o.spec?.containers ?? []), ...(o.spec?.initContainers ?? [])].some((c) => c.name === "istio-proxy");
    const key = `${o.metadata.namespace}/${workloadOfPod(o)}`;
    if (injected && !seen.has(key)) uncovered.add(key);
  }
  return { workloads, uncovered: [...uncovered].sort() };
}

/** Large inputs say how far they are, on a terminal only (a pipe or a CI log gets no \r lines). */
async function* withProgress(input: AsyncIterable<Buffer>, name: string): AsyncGenerator<Buffer> {
  if (!process.stderr.isTTY) return yield* input;
  let bytes = 0,
    last = Date.now();
  for await (const c of input) {
    bytes += c.length;
    if (Date.now() - last > 1000) {
      last = Date.now();
      process.stderr.write(`\rmeshtune: ${name}: ${(bytes / 2 ** 20).toFixed(0)} MB read`);
    }
    yield c;
  }
  if (bytes > 2 ** 26) process.stderr.write(`\rmeshtune: ${name}: ${(bytes / 2 ** 20).toFixed(0)} MB read\n`);
}

/**
 * All files through one learner: a pod's namespace is inferred from every input, so one pod is
 * one workload. Large plain files are learned on every core (accesslog/parallel.ts), with the
 * same result.
 */
export async function learnAccessLogs(
  paths: string[],
  opts: Pick<RecommendOptions, "workload" | "defaultNamespace" | "clusterDomain"> & { pods?: PodCatalog },
  graph: Graph,
) {
  const base = { workload: opts.workload, defaultNamespace: opts.defaultNamespace, clusterDomain: opts.clusterDomain };
  // MESHTUNE_LEARN_SHARDS caps the threads (1: never split); MESHTUNE_PARALLEL_MIN_BYTES moves
  // the size from which a split pays (tests split the small samples with it).
  const script = cliEntry();
  const minBytes = Number(process.env.MESHTUNE_PARALLEL_MIN_BYTES ?? PARALLEL_MIN_BYTES);
  const cap = Number(process.env.MESHTUNE_LEARN_SHARDS ?? 0);
  const shards = script ? shardCount(paths, minBytes, cap > 0 ? cap : undefined) : 1;
  if (shards > 1) process.stderr.write(`meshtune: learning the access logs in ${shards} shards, one thread each\n`);
  const open = (p: string) => withProgress(p === "-" ? process.stdin : inputChunks(p), p === "-" ? "stdin" : p);
  try {
    if (shards > 1)
      return await learnParallel(paths, { ...base, pods: opts.pods }, graph, shards, script!, withProgress);
    const l = new AccessLogLearner({ ...base, pods: opts.pods });
    const inputs = await learnFiles(l, paths, open);
    const { placements } = l.finish(graph);
    return { inputs, placements };
  } catch (e) {
    const input = (e as { input?: string }).input;
    if (input === undefined) throw e;
    throw new UserError(`--access-log ${describeFsError(input === "-" ? "stdin" : input, e)}`);
  }
}

type Obj = Record<string, unknown>;

export function renderSidecars(items: Obj[] | SidecarObj[], output: "yaml" | "json"): string {
  let out = "";
  writeList((s) => (out += s), items as Obj[], output);
  return out;
}

/**
 * Exactly one document, a Kubernetes List (JSON or YAML), parseable by kubectl apply -f -, jq and
 * yq; written object by object, so tens of thousands of Sidecars never sit in memory as one string
 * (stdout to a pipe or file is synchronous).
 */
export function writeList(write: (s: string) => void, items: Obj[], output: "yaml" | "json"): void {
  if (output === "yaml") {
    write(items.length ? "apiVersion: v1\nkind: List\nitems:\n" : "apiVersion: v1\nkind: List\nitems: []\n");
    for (const o of items)
      write(
        toYaml(o)
          .trimEnd()
          .split("\n")
          .map((l, i) => (i ? "    " : "  - ") + l)
          .join("\n") + "\n",
      );
    return;
  }
  write('{\n  "apiVersion": "v1",\n  "kind": "List",\n  "items": [');
  items.forEach((s, i) => write((i ? "," : "") + "\n    " + JSON.stringify(s, null, 2).replace(/\n/g, "\n    ")));
  write(items.length ? "\n  ]\n}\n" : "]\n}\n");
}

/** The likely fix for an input that taught nothing, from its skip reasons. */
function emptyInputHint(inputs: InputSummary[]): string {
  const sum = (k: string) => inputs.reduce((a, i) => a + (i.skipped[k] ?? 0), 0);
  if (sum("unattributed"))
    return `: ${sum("unattributed")} access-log lines carry no pod: collect them with \`kubectl logs --prefix\`, or pass --workload NS/NAME for one workload's log`;
  if (sum("not-proxy-container"))
    return ": only application containers' lines: collect the istio-proxy container's logs";
  if (sum("not-access-log"))
    return ": no Envoy access-log lines (Istio writes none unless meshConfig.accessLogFile is set, e.g. /dev/stdout)";
  return "";
}

/**
 * --workload must name a workload the input shows: a Sidecar for one it never saw would import
 * nothing and cut it off when applied. Exit 2 with the closest names seen.
 */
function checkWorkloadSeen(graph: Graph, key: string): void {
  const n = graph.nodes.get(key);
  if (n && (n.edges.size || n.unknown.size || n.pods.size)) return;
  const [ns, name] = key.split("/");
  const seen = [...graph.nodes.values()].filter((x) => x.edges.size || x.unknown.size || x.pods.size);
  const score = (x: { namespace: string; name: string }) =>
    (x.namespace === ns ? 0 : 2) + (x.name.startsWith(name) || name.startsWith(x.name) ? 0 : 1);
  const candidates = seen
    .sort((a, b) => score(a) - score(b) || a.key.localeCompare(b.key))
    .slice(0, 8)
    .map((x) => x.key);
  throw new UserError(
    `--workload ${key}: no traffic of that workload in the input${candidates.length ? `; workloads seen: ${candidates.join(", ")}` : ""}`,
    2,
  );
}

const partName = (o: Obj) => {
  const m = o.metadata as { name: string; namespace?: string };
  return `${m.namespace ?? "cluster"}.${String(o.kind).toLowerCase()}.${m.name}`;
};

interface Catalog {
  services: CatalogService[];
  pods: PodCatalog;
  virtualServices: VirtualServiceRef[];
  items: Record<string, unknown>[];
}

function catalogOf(items: Record<string, unknown>[], domain: string): Catalog {
  return {
    services: parseCatalog({ items }, domain),
    pods: new PodCatalog(items),
    items,
    virtualServices: virtualServiceRefs(items, domain),
  };
}

async function loadCatalog(path: string, domain: string): Promise<Catalog> {
  let raw: string;
  try {
    raw = await fs.readFile(path, "utf8");
  } catch (e) {
    throw new UserError(`--catalog ${describeFsError(path, e)}`);
  }
  try {
    return catalogOf(catalogItems(raw), domain);
  } catch (e) {
    throw new UserError(`--catalog ${path}: ${(e as Error).message}`);
  }
}

async function loadMesh(path: string): Promise<MeshConfig> {
  let raw: string;
  try {
    raw = await fs.readFile(path, "utf8");
  } catch (e) {
    throw new UserError(`--mesh-config ${describeFsError(path, e)}`);
  }
  try {
    return parseMeshConfig(raw);
  } catch (e) {
    throw new UserError(`--mesh-config ${path}: ${(e as Error).message}`);
  }
}

export async function recommend(o: RecommendOptions): Promise<void> {
  if (o.accessLog.length === 0 && !o.reports)
    throw new UserError("recommend needs --access-log FILE|- or --reports DIR", 2);
  if (o.accessLog.filter((p) => p === "-").length > 1)
    throw new UserError("--access-log -: standard input can be read once; give it once", 2);
  if (o.workload && !/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(o.workload))
    throw new UserError(`--workload ${o.workload}: expected NAMESPACE/NAME`, 2);
  const iv = /^(\d+)\.(\d+)$/.exec(o.istioVersion);
  if (!iv) throw new UserError(`--istio-version ${o.istioVersion}: expected MAJOR.MINOR, e.g. 1.27`, 2);
  const unlearned = unlearnedMode(o.unlearned ?? "auto", [Number(iv[1]), Number(iv[2])]);
  const unlearnedNote =
    o.fallbackHost && unlearned.mode === "passthrough"
      ? `--fallback-host not used as egressProxy: ${unlearned.why}`
      : null;
  if (unlearnedNote) process.stderr.write(`meshtune: ${unlearnedNote}\n`);
  o = {
    ...o,
    collectorHost: qualifyServiceHost("--collector-host", o.collectorHost, o.clusterDomain),
    fallbackHost:
      o.fallbackHost && unlearned.mode === "egress-proxy"
        ? qualifyServiceHost("--fallback-host", o.fallbackHost, o.clusterDomain)
        : undefined,
  };
  checkScopeFlags(o.alwaysInclude, [
    ["--collector-host", o.collectorHost],
    ["--fallback-host", o.fallbackHost],
  ]);
  const fallbackPort = Number(o.fallbackPort);
  if (!Number.isInteger(fallbackPort) || fallbackPort < 1 || fallbackPort > 65535)
    throw new UserError(`--fallback-port ${o.fallbackPort}: expected 1-65535`, 2);
  for (const p of o.accessLog) await checkReadable(p);
  if (o.kubeconfig && o.catalog)
    throw new UserError("--kubeconfig and --catalog: give one (a live cluster or a file)", 2);
  const live = o.kubeconfig ? await readLiveCatalog(o.kubeconfig, o.context) : null;
  const catalog = live
    ? catalogOf(live.items, o.clusterDomain)
    : o.catalog
      ? await loadCatalog(o.catalog, o.clusterDomain)
      : null;
  const mesh = o.meshConfig ? await loadMesh(o.meshConfig) : (live?.mesh ?? DEFAULT_MESH);

  const graph = new Graph();
  const { inputs, placements } = await learnAccessLogs(
    o.accessLog,
    { ...o, pods: catalog?.pods.size ? catalog.pods : undefined },
    graph,
  );
  if (o.reports) inputs.push(await loadReportDir(o.reports, graph));
  if (graph.nodes.size === 0) {
    // Say what was skipped and why before failing (the skip reasons name the fix); an input with
    // no lines at all needs no report beyond the one-line error.
    if (inputs.some((i) => i.lines > 0)) {
      const text = ["# meshtune report", ...inputLines(inputs)].join("\n") + "\n";
      if (o.report) await fs.writeFile(o.report, text);
      else process.stderr.write(text);
    }
    throw new UserError(
      `no access-log entries or reports found in ${inputs.map((i) => i.name).join(", ")}${emptyInputHint(inputs)}`,
    );
  }
  if (o.workload) checkWorkloadSeen(graph, o.workload);

  const gen: GenerateOptions = {
    ...DEFAULT_GENERATE,
    alwaysInclude: o.alwaysInclude,
    clusterDomain: o.clusterDomain,
    namespace: o.namespace,
    workload: o.workload,
    mesh,
    meshtuneHosts: [o.collectorHost, ...(o.fallbackHost && mesh.outboundMode === "ALLOW_ANY" ? [o.fallbackHost] : [])],
    egressProxy: o.fallbackHost ? { host: o.fallbackHost, port: fallbackPort } : undefined,
    fallbackHosts: o.fallbackHost ? [o.fallbackHost] : DEFAULT_GENERATE.fallbackHosts,
    index: new HostIndex(catalog?.services ?? []),
    virtualServices: catalog?.virtualServices ?? [],
    existingSidecars: catalog?.items.filter((x) => x?.kind === "Sidecar") ?? [],
  };
  const result = generateSidecars(graph, gen);
  for (const s of result.sidecars) validateSidecar(s);
  const savings = catalog ? result.sidecars.map((s) => estimateSavings(s, catalog.services)) : null;

  const want = { rules: !!o.rules, resources: !!o.resources, discovery: !!o.discovery, cryptomb: !!o.cryptomb };
  let parts: TuningParts | null = null;
  let tuning: ReturnType<typeof tune> | null = null;
  if (want.rules || want.resources || want.discovery || want.cryptomb || o.html || o.dataplane) {
    const v = /^(\d+)\.(\d+)$/.exec(o.istioVersion);
    if (!v) throw new UserError(`--istio-version ${o.istioVersion}: expected MAJOR.MINOR, e.g. 1.27`, 2);
    const minRequests = Number(o.minRequests);
    if (!Number.isInteger(minRequests) || minRequests < 1)
      throw new UserError(`--min-requests ${o.minRequests}: expected a positive integer`, 2);
    const minWindowMs = parseDur(o.minWindow ?? "10m");
    if (!(minWindowMs >= 0))
      throw new UserError(`--min-window ${o.minWindow}: expected a duration like 10m, 1h or 600s`, 2);
    const cal = o.prometheus
      ? await proxyUsage(o.prometheus, graph, o.prometheusWindow).catch((e) => {
          throw new UserError(`--prometheus: ${(e as Error).message}`);
        })
      : null;
    tuning = tune({
      graph,
      services: catalog?.services ?? [],
      items: catalog?.items ?? [],
      savings,
      domain: o.clusterDomain,
      istioVersion: [Number(v[1]), Number(v[2])],
      minRequests,
      minWindowS: minWindowMs / 1000,
      usage: cal?.usage,
      handshakes: cal?.handshakes,
    });
    if (want.rules || want.resources || want.discovery || want.cryptomb) parts = tuningParts(tuning, want);
  }
  const limits = { dropped: graph.dropped, evicted: graph.evicted };
  const reportData: ReportData = {
    inputs,
    placements,
    result,
    savings,
    limits,
    mesh,
    coverage: coverageOf(graph, catalog?.items ?? []),
    notes: unlearnedNote ? [unlearnedNote] : [],
  };
  if (o.html)
    await writeHtmlReport(o.html, {
      report: reportData,
      graph,
      services: catalog?.services ?? [],
      items: catalog?.items ?? [],
      domain: o.clusterDomain,
      result,
      savings,
      tuning,
      inputs,
      reports: o.reports,
    });

  if (o.diff) {
    const d = diffSidecars(result.sidecars, catalog?.items ?? [], result.rejected);
    process.stdout.write(d.lines.join("\n") + "\n");
    if (d.created + d.changed) throw new UserError(`diff: ${d.created + d.changed} Sidecars would change`, 1);
    return;
  }
  // --strict refuses before anything reaches stdout: Sidecars learned from dropped data must not
  // flow into `| kubectl apply -f -`.
  const limitsHit = limitsLine({ dropped: graph.dropped, evicted: graph.evicted });
  if (limitsHit && o.strict) {
    process.stderr.write(["# meshtune report", ...inputLines(inputs), limitsHit].join("\n") + "\n");
    throw new UserError(`--strict: ${limitsHit}`, 3);
  }
  // stdout: whole objects only (Sidecars, meshtune's own rules). Patches and install guidance go
  // to --out-dir files or the report, each with its reasons.
  const applyParts = parts?.apply ?? [];
  const aside = parts ? [...parts.patches, ...parts.guidance] : [];
  let tuningReport = "";
  if (o.outDir) {
    await fs.mkdir(o.outDir, { recursive: true });
    const wrote: string[] = [];
    const file = async (name: string, text: string) => {
      await fs.writeFile(join(o.outDir!, name), text);
      wrote.push(name);
    };
    for (const s of result.sidecars)
      await file(`${s.metadata.namespace}.${s.metadata.name}.${o.output}`, renderSidecars([s], o.output));
    for (const x of applyParts) await file(`${partName(x.obj)}.${o.output}`, renderSidecars([x.obj], o.output));
    if (parts?.patches.length) await file("patches.yaml", renderParts(parts.patches));
    if (parts?.guidance.length) await file("install-guidance.yaml", renderParts(parts.guidance));
    process.stderr.write(`meshtune: wrote ${wrote.length} files to ${o.outDir}: ${wrote.join(", ")}\n`);
  } else {
    writeList(
      (s) => process.stdout.write(s),
      [...(result.sidecars as unknown as Obj[]), ...applyParts.map((x) => x.obj)],
      o.output,
    );
    if (aside.length)
      tuningReport += `\n## not on stdout: merge these into objects you own (reasons above each)\n${renderParts(aside)}`;
  }
  if (applyParts.length)
    tuningReport =
      "\n## rules on stdout, and why\n" +
      applyParts.map((x) => `${partName(x.obj)}:\n${x.why.map((w) => `  ${w}`).join("\n")}`).join("\n") +
      "\n" +
      tuningReport;
  if (parts?.notes.length) tuningReport += `\n## tuning notes\n${parts.notes.map((n) => `- ${n}`).join("\n")}\n`;
  if (o.dataplane && tuning) tuningReport += `\n${renderDataplane(tuning.dataplane)}`;

  const text = renderReport(reportData) + tuningReport;
  if (o.report) await fs.writeFile(o.report, text);
  else process.stderr.write(text);
  // A hit limit is always said on stderr, even when the report goes to a file.
  const lim = limitsLine(limits);
  if (lim && o.report) process.stderr.write(`meshtune: ${lim}\n`);
  if (lim && o.strict) throw new UserError(`--strict: ${lim}`, 3);
}

// Human-readable report: what was learned, what was skipped and why, what the mesh does
// not know, and the savings estimate. Goes to stderr or --report FILE, never to stdout.
import { toYaml } from "./k8s/yaml.js";
import type { GenerateResult } from "./sidecar/generate.js";
import type { Savings, XdsSize } from "./sidecar/savings.js";
import type { Placement } from "./accesslog/learner.js";
import type { MeshConfig } from "./istio/mesh-config.js";

export interface InputSummary {
  name: string;
  lines: number;
  records: number;
  bytes: number;
  skipped: Record<string, number>;
}

export interface ReportData {
  inputs: InputSummary[];
  placements: Placement[];
  result: GenerateResult;
  mesh?: MeshConfig;
  savings: Savings[] | null;
  /** The evidence behind each workload's Sidecar, and meshed workloads the input never showed. */
  coverage?: { workloads: { key: string; requests: number; firstMs: number; lastMs: number }[]; uncovered: string[] };
  /** The graph's drops and evictions (limits hit). */
  limits: { dropped: Record<string, number>; evicted: { unbacked: number; idle: number; fairness?: number } };
  /** Other things a reviewer must know before applying (e.g. a flag that was not honoured). */
  notes?: string[];
}

/** Evidence too thin to trust a Sidecar's host list: under 20 requests or 10 minutes. */
const isThin = (w: { requests: number; firstMs: number; lastMs: number }) =>
  w.requests < 20 || w.lastMs - w.firstMs < 600_000;

/**
 * Everything a reviewer must check before applying the output, one line each: the same list
 * heads the CLI report and the HTML report's Report page, so neither can drop a warning.
 */
export function trustWarnings(d: ReportData): string[] {
  const out: string[] = [];
  const lim = limitsLine(d.limits);
  if (lim) out.push(lim);
  for (const i of d.inputs) if (i.records === 0) out.push(`${i.name} holds no access-log entries`);
  const pods = (how: Placement["how"]) => d.placements.filter((p) => p.how === how);
  if (pods("defaulted").length)
    out.push(
      `namespace defaulted for ${pods("defaulted").length} pod(s), nothing showed where they run: ${pods("defaulted")
        .map((p) => `${p.pod}→${p.namespace}`)
        .join(", ")}`,
    );
  if (pods("ambiguous").length)
    out.push(
      `pod name in several catalog namespaces, guessed: ${pods("ambiguous")
        .map((p) => p.pod)
        .join(", ")}`,
    );
  const guessed = d.placements.filter((p) => p.how !== "catalog");
  if (guessed.length)
    out.push(
      `workload names and proxy kinds of ${guessed.length} pod(s) guessed from pod names (give --catalog with pods)`,
    );
  const thin = (d.coverage?.workloads ?? []).filter(isThin);
  if (thin.length)
    out.push(
      `thin evidence (< 20 requests or < 10 min) behind ${thin.length} Sidecar(s), hosts may be missing: ${thin.map((w) => w.key).join(", ")}`,
    );
  if (d.coverage?.uncovered.length)
    out.push(`meshed workloads the input did not cover (no Sidecar): ${d.coverage.uncovered.join(", ")}`);
  for (const r of d.result.rejected)
    if (r.source === "workload identity") out.push(`no Sidecar for ${r.workload}: ${r.reason}`);
  out.push(...(d.notes ?? []));
  return out;
}

/** One line naming every limit that was hit, or null. */
export function limitsLine(l: ReportData["limits"]): string | null {
  const parts = Object.entries(l.dropped)
    .filter(([, n]) => n > 0)
    .map(([r, n]) => `${r} ${fmt(n)}`);
  if (l.evicted.unbacked) parts.push(`evicted (no pod behind them) ${fmt(l.evicted.unbacked)} workloads/pods`);
  if (l.evicted.idle) parts.push(`evicted (least recently seen) ${fmt(l.evicted.idle)} workloads/pods`);
  if (l.evicted.fairness)
    parts.push(`evicted (the biggest holder gave way at the total cap) ${fmt(l.evicted.fairness)} workloads/pods`);
  return parts.length ? `LIMITS HIT, data was dropped: ${parts.join(", ")}` : null;
}

const fmt = (n: number) => n.toLocaleString("en-US");

function sizeTotals(rows: Savings[], side: "before" | "after"): XdsSize {
  const t: XdsSize = { clusters: 0, listeners: 0, routes: 0, virtualHosts: 0, endpoints: 0, bytes: 0 };
  for (const r of rows) for (const k of Object.keys(t) as (keyof XdsSize)[]) t[k] += r[side][k];
  return t;
}

/** What each input held and what was skipped, by reason. */
export function inputLines(inputs: InputSummary[]): string[] {
  const out: string[] = [];
  for (const i of inputs) {
    const sk = Object.entries(i.skipped)
      .filter(([, n]) => n > 0)
      .map(([r, n]) => `${r} ${fmt(n)}`);
    out.push(
      `input ${i.name}: ${fmt(i.lines)} lines, ${fmt(i.records)} access-log entries` +
        (sk.length ? `, skipped: ${sk.join(", ")}` : ""),
    );
    if (i.records === 0) out.push(`  warning: ${i.name} holds no access-log entries`);
  }
  return out;
}

export function renderReport(d: ReportData): string {
  const out: string[] = ["# meshtune report", ...inputLines(d.inputs)];
  const warn = trustWarnings(d);
  if (warn.length) out.push("", "## check before applying", ...warn.map((w) => `- ${w}`), "");
  const lim = limitsLine(d.limits);
  if (lim) out.push(lim);
  const by = (how: Placement["how"]) => d.placements.filter((p) => p.how === how);
  if (by("catalog").length) out.push(`pods placed from the pod catalog: ${by("catalog").length}`);
  if (by("inferred").length)
    out.push(
      `namespaces inferred (inbound mTLS SNI, else the namespace its short-name calls resolved in): ${by("inferred")
        .map((p) => `${p.pod}→${p.namespace}`)
        .join(", ")}`,
    );
  if (by("defaulted").length)
    out.push(
      `namespace DEFAULTED (no catalog entry, no inbound mTLS to infer from; check them): ${by("defaulted")
        .map((p) => `${p.pod}→${p.namespace}`)
        .join(", ")}`,
    );
  if (by("ambiguous").length)
    out.push(
      `pod name in several catalog namespaces, guessed: ${by("ambiguous")
        .map((p) => `${p.pod}→${p.namespace}`)
        .join(", ")}`,
    );
  const guessed = d.placements.filter((p) => p.how !== "catalog");
  if (guessed.length)
    out.push(`workload names guessed from pod names (give --catalog with pods to be exact): ${guessed.length} pods`);
  if (d.mesh)
    out.push(
      `mesh outbound policy: ${d.mesh.outboundMode}${d.mesh.providers.length ? `; extension providers kept in scope: ${d.mesh.providers.map((p) => p.provider).join(", ")}` : ""}`,
    );
  out.push(`sidecars generated: ${d.result.sidecars.length}`);
  if (d.coverage) {
    out.push("", "## coverage (the evidence behind each Sidecar; thin evidence means hosts may be missing)");
    for (const w of d.coverage.workloads) {
      const mins = Math.max(0, Math.round((w.lastMs - w.firstMs) / 60_000));
      const thin = isThin(w) ? "  THIN" : "";
      out.push(`${w.key}: ${fmt(w.requests)} requests over ${mins} min${thin}`);
    }
    if (d.coverage.uncovered.length)
      out.push(`meshed workloads the input did not cover (no Sidecar for them): ${d.coverage.uncovered.join(", ")}`);
  }
  for (const g of d.result.proxiesSkipped)
    out.push(`${g.kind} skipped: ${g.workload} (${g.why}; Sidecar resources do not apply)`);
  if (d.result.rejected.length) {
    out.push("", "## rejected by Istio validation (never emitted)");
    for (const r of d.result.rejected)
      out.push(`${r.workload}: ${JSON.stringify(r.candidate)} from ${r.source}: ${r.reason}`);
  }
  const unk = d.result.unregistered;
  if (unk.length) {
    out.push("", "## destinations outside the mesh registry");
    for (const u of unk) {
      const what = u.kind === "blackhole" ? "BLOCKED (BlackHoleCluster)" : "unregistered (PassthroughCluster)";
      out.push(
        `${u.workload} → ${u.dst}${u.authority ? ` authority=${u.authority}` : ""}${u.sni ? ` sni=${u.sni}` : ""}: ${what}, ${fmt(u.count)} requests/connections`,
      );
    }
    // One suggestion per (workload namespace, host): several workloads may hit the same one.
    const suggestions = new Map<string, object>();
    for (const u of unk)
      if (u.suggestion)
        suggestions.set(`${u.suggestion.metadata.namespace}/${u.suggestion.spec.hosts[0]}`, u.suggestion);
    if (suggestions.size) {
      out.push("", "suggested ServiceEntries (review before applying):");
      for (const se of suggestions.values()) out.push("---", toYaml(se).trimEnd());
    }
  }
  if (d.savings) {
    out.push(
      "",
      "## savings estimate (a model calibrated against Istio's own generator, 1.31 line; `make bench` measures it within ±10 %; see README 'Savings model')",
    );
    out.push("workload                                  clusters        listeners      endpoints      xDS KiB");
    for (const s of d.savings) out.push(row(s.workload, s.before, s.after));
    if (d.savings.length) {
      const b = sizeTotals(d.savings, "before"),
        a = sizeTotals(d.savings, "after");
      out.push(row("TOTAL (all generated sidecars)", b, a));
    }
  }
  return out.join("\n") + "\n";
}

function cell(b: number, a: number): string {
  const p = b === 0 ? 0 : (100 * (b - a)) / b;
  return `${b}→${a} (-${p.toFixed(0)}%)`.padEnd(15);
}

function row(name: string, b: XdsSize, a: XdsSize): string {
  const kib = (n: number) => Math.round(n / 1024);
  return `${name.padEnd(40)}  ${cell(b.clusters, a.clusters)} ${cell(b.listeners, a.listeners)} ${cell(b.endpoints, a.endpoints)} ${cell(kib(b.bytes), kib(a.bytes))}`;
}

// Merge a validated report into the shared dependency graph. First/last seen come from the
// receiver's clock (`atMs`): a proxy's clock, or a forged window, can neither skip the minimum
// observation window nor keep a host past retention. Offline (saved reports, no receiver) the
// window is used, clamped to [0, now].
import type { ReportV1 } from "./report-schema.js";
import { BUCKETS } from "../model/histogram.js";
import { type DropReason, type Graph, type Timing, emptyStats } from "../model/graph.js";

/** The v2 timing fields of one report edge; null for a v1 edge (nothing to merge). */
export function timingOf(e: ReportV1["edges"][number]): Timing | null {
  if (!e.upstream && !e.methods && !e.bytes) return null;
  const n = (x: number | undefined) => x ?? 0;
  const up = e.upstream?.buckets;
  return {
    upCount: up ? up.reduce((a, b) => a + b, 0) : 0,
    upSumUs: n(e.upstream?.sumUs),
    upBuckets: up ? [...up] : new Array<number>(BUCKETS).fill(0),
    txBytes: n(e.bytes?.tx),
    rxBytes: n(e.bytes?.rx),
    idempotent: n(e.methods?.idempotent),
    other: n(e.methods?.other),
  };
}

export interface MergeResult {
  merged: number;
  dropped: number;
  reasons: Partial<Record<DropReason, number>>;
}

export function mergeReport(g: Graph, r: ReportV1, atMs?: number): MergeResult {
  const out: MergeResult = { merged: 0, dropped: 0, reasons: {} };
  const before = { ...g.dropped };
  const count = () => {
    for (const [k, v] of Object.entries(g.dropped) as [DropReason, number][])
      if (v > before[k]) out.reasons[k] = v - before[k];
    out.dropped = Object.values(out.reasons).reduce((a, b) => a + (b ?? 0), 0);
    return out;
  };
  const n = g.node(r.proxy.namespace, r.proxy.workload);
  if (!n) {
    out.dropped = r.edges.length + (r.unknown?.length ?? 0);
    out.reasons["workload-cap"] = out.dropped;
    return out;
  }
  if (r.proxy.pod && n.pods.size < 100) n.pods.add(r.proxy.pod);
  const now = Date.now();
  const first = atMs ?? Math.min(Math.max(0, r.window.startMs), now);
  const last = atMs ?? Math.min(Math.max(first, r.window.endMs), now);
  const source = r.proxy.pod ?? "";
  for (const e of r.edges) {
    const s = emptyStats(first);
    s.lastSeenMs = last;
    s.count = e.count;
    s.err4xx = e.err4xx ?? 0;
    s.err5xx = e.err5xx ?? 0;
    if (e.latency) {
      s.buckets = e.latency.buckets;
      s.sumUs = e.latency.sumUs ?? 0;
    } // schema: exactly BUCKETS
    if (
      g.addEdge(
        n,
        { dir: e.dir, cluster: e.cluster, authority: e.authority ?? "", proto: e.proto ?? "" },
        s,
        source,
        timingOf(e),
      )
    )
      out.merged++;
  }
  for (const u of r.unknown ?? []) {
    const s = emptyStats(first);
    s.lastSeenMs = last;
    s.count = u.count;
    const ok = g.addUnknown(
      n,
      {
        kind: u.cluster === "BlackHoleCluster" ? "blackhole" : "passthrough",
        dst: u.dst,
        authority: u.authority ?? "",
        sni: u.sni ?? "",
        proto: u.authority ? "HTTP" : u.sni ? "TLS" : "TCP",
      },
      s,
    );
    if (ok) out.merged++;
  }
  return count();
}

// Merge a validated report into the shared dependency graph.
import type { ReportV1 } from "./report-schema.js";
import { type Graph, emptyStats } from "../model/graph.js";

export function mergeReport(g: Graph, r: ReportV1): void {
  const n = g.node(r.proxy.namespace, r.proxy.workload);
  if (!n) return;
  if (r.proxy.pod && n.pods.size < 100) n.pods.add(r.proxy.pod);
  const { startMs, endMs } = r.window;
  for (const e of r.edges) {
    const s = emptyStats(startMs);
    s.lastSeenMs = Math.max(startMs, endMs);
    s.count = e.count;
    s.err4xx = e.err4xx ?? 0;
    s.err5xx = e.err5xx ?? 0;
    if (e.latency) { s.buckets = e.latency.buckets; s.sumUs = e.latency.sumUs ?? 0; } // schema: exactly BUCKETS
    g.addEdge(n, { dir: e.dir, cluster: e.cluster, authority: e.authority ?? "", proto: e.proto ?? "" }, s);
  }
  for (const u of r.unknown ?? []) {
    const s = emptyStats(startMs);
    s.lastSeenMs = Math.max(startMs, endMs);
    s.count = u.count;
    g.addUnknown(n, {
      kind: u.cluster === "BlackHoleCluster" ? "blackhole" : "passthrough", dst: u.dst, authority: u.authority ?? "", sni: u.sni ?? "",
      proto: u.authority ? "HTTP" : u.sni ? "TLS" : "TCP",
    }, s);
  }
}

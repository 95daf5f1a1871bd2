// Streaming access-log learner: lines in, graph out, constant memory in the input size
// (only distinct pods × edges are kept). Every line that is not a usable access-log entry
// is skipped and counted by reason; nothing learned from good lines is ever dropped.
import { readLineBatches } from "./lines.js";
import { parseText } from "./text-format.js";
import { parseJson } from "./json-format.js";
import { splitPrefix } from "./kubectl-prefix.js";
import type { AccessRecord } from "./record.js";
import { Graph, type Stats, emptyStats, type WorkloadNode } from "../model/graph.js";
import { bucketOf } from "../model/histogram.js";
import { hostNamespace, parseCluster } from "../model/cluster-name.js";
import { isGatewayWorkload, workloadFromPod } from "../model/workload.js";

export type SkipReason = "not-access-log" | "malformed-json" | "too-long" | "unattributed" | "other-cluster";

export interface LearnOptions {
  /** Attribute unprefixed lines to this workload ("ns/name"). */
  workload?: string;
  /** Namespace for pods whose namespace cannot be inferred. */
  defaultNamespace: string;
  clusterDomain: string;
}

interface PodBuffer { node: WorkloadNode; nsVotes: Map<string, number> }

export class AccessLogLearner {
  readonly skipped: Record<SkipReason, number> = { "not-access-log": 0, "malformed-json": 0, "too-long": 0, unattributed: 0, "other-cluster": 0 };
  lines = 0;
  records = 0;
  bytes = 0;
  /** Per-pod buffers; the namespace is decided at the end from inbound SNI/cluster hosts. */
  private readonly pods = new Map<string, PodBuffer>();
  private readonly scratch = new Graph();
  private readonly fixed: PodBuffer | null; // --workload: every unprefixed line belongs to it

  constructor(readonly opts: LearnOptions) {
    const [ns, name] = opts.workload?.split("/") ?? [];
    const node = opts.workload ? this.scratch.node(ns, name) : null;
    this.fixed = node ? { node, nsVotes: new Map() } : null;
  }

  async learnStream(input: AsyncIterable<Buffer>): Promise<void> {
    for await (const batch of readLineBatches(input))
      for (const l of batch) {
        this.lines++;
        if ("tooLong" in l) { this.skipped["too-long"]++; this.bytes += l.tooLong + 1; continue; }
        this.bytes += l.text.length + 1;
        this.learnLine(l.text);
      }
  }

  learnLine(raw: string): void {
    let line = raw;
    let pod = "";
    const p = splitPrefix(line);
    if (p) { pod = p.pod; line = p.rest; }
    let rec: AccessRecord | null;
    if (line.charCodeAt(0) === 123 /* { */) {
      try { rec = parseJson(line); } catch { this.skipped["malformed-json"]++; return; }
    } else rec = parseText(line);
    if (!rec) { this.skipped["not-access-log"]++; return; }
    const buf = this.bufferFor(pod);
    if (!buf) { this.skipped.unattributed++; return; }
    this.records++;
    this.record(buf, rec);
  }

  private bufferFor(pod: string): PodBuffer | null {
    if (!pod) return this.fixed;
    let b = this.pods.get(pod);
    if (!b) {
      const node = this.scratch.node("?" + pod, workloadFromPod(pod));
      if (!node) return null;
      node.pods.add(pod);
      b = { node, nsVotes: new Map() };
      this.pods.set(pod, b);
    }
    return b;
  }

  private record(b: PodBuffer, r: AccessRecord): void {
    const at = Number.isNaN(r.startMs) ? Date.now() : r.startMs;
    const us = Math.max(0, Math.round(r.durationMs * 1000));
    const c = parseCluster(r.cluster);
    const proto = r.protocol || "TCP";
    switch (c.kind) {
      case "outbound":
        this.scratch.observe(b.node, { dir: "outbound", cluster: r.cluster, authority: r.authority, proto }, r.code, us, at);
        return;
      case "inbound": {
        // The SNI (mTLS) or an old-style inbound cluster names the serving service: its namespace.
        const host = r.sni ? parseCluster(r.sni).host : c.host;
        const ns = host ? hostNamespace(host, this.opts.clusterDomain) : null;
        if (ns) b.nsVotes.set(ns, (b.nsVotes.get(ns) ?? 0) + 1);
        this.scratch.observe(b.node, { dir: "inbound", cluster: r.cluster, authority: r.authority, proto }, r.code, us, at);
        return;
      }
      case "passthrough":
      case "blackhole": {
        const s: Stats = emptyStats(at);
        s.count = 1;
        if (r.code >= 500) s.err5xx = 1;
        else if (r.code >= 400) s.err4xx = 1;
        s.sumUs = us;
        s.buckets[bucketOf(us)] = 1;
        this.scratch.addUnknown(b.node, {
          kind: c.kind, dst: r.upstreamHost || r.downstreamLocal, authority: r.authority, sni: r.sni,
          proto: r.method ? "HTTP" : r.sni ? "TLS" : "TCP",
        }, s);
        return;
      }
      default:
        this.skipped["other-cluster"]++;
    }
  }

  /** Resolve namespaces and return the learned graph. */
  finish(into: Graph = new Graph()): { graph: Graph; inferred: Map<string, string> } {
    const inferred = new Map<string, string>();
    if (this.fixed) into.mergeNode(this.fixed.node, this.fixed.node.namespace);
    for (const [pod, b] of this.pods) {
      // Gateways serve no mTLS inbound to infer from; Istio installs them in istio-system.
      let ns = isGatewayWorkload(b.node.name) ? "istio-system" : this.opts.defaultNamespace, best = 0;
      for (const [v, n] of b.nsVotes) if (n > best) { ns = v; best = n; }
      if (best > 0) inferred.set(pod, ns);
      into.mergeNode(b.node, ns);
    }
    return { graph: into, inferred };
  }
}

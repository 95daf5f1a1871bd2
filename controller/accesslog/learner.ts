// Streaming access-log learner: lines in, graph out, constant memory in the input size
// (only distinct pods × edges are kept). Every line that is not a usable access-log entry
// is skipped and counted by reason; nothing learned from good lines is ever dropped.
import { readLineBatches } from "./lines.js";
import { parseText } from "./text-format.js";
import { parseJson } from "./json-format.js";
import { splitPrefix } from "./kubectl-prefix.js";
import type { AccessRecord } from "./record.js";
import { DEFAULT_LIMITS, Graph, type Stats, emptyStats, type WorkloadNode } from "../model/graph.js";
import { bucketOf } from "../model/histogram.js";
import { isZtunnelLine, parseZtunnel, type ZtunnelRecord } from "./ztunnel-format.js";
import { hostNamespace, parseCluster } from "../model/cluster-name.js";
import { looksLikeGateway, workloadFromPod } from "../model/workload.js";
import type { PodCatalog } from "../sidecar/pod-catalog.js";
import type { ProxyInfo } from "../model/identity.js";

export type SkipReason =
  | "not-access-log"
  | "malformed-json"
  | "too-long"
  | "unattributed"
  | "other-cluster"
  | "not-proxy-container"
  | "ztunnel-log"
  | "waypoint-cluster"
  | "graph-full";

// Clusters only a waypoint has (pilot/pkg/networking/core/cluster_waypoint.go, waypoint.go):
// inbound-vip|…, connect_originate, main_internal, encap.
const WAYPOINT_CLUSTER = /^(inbound-vip\||connect_originate$|main_internal$|encap$)/;

export interface LearnOptions {
  /** Attribute unprefixed lines to this workload ("ns/name"). */
  workload?: string;
  /** Namespace for pods whose namespace cannot be inferred. */
  defaultNamespace: string;
  clusterDomain: string;
  /** Pods from the catalog: when present they decide namespace, workload, labels and proxy kind. */
  pods?: PodCatalog;
  /**
   * Learn only the lines of buckets [from, to) of `count` (parallel learning, accesslog/parallel.ts):
   * a prefixed line belongs to the bucket its pod hashes to, every other line to bucket 0, so
   * each pod, with all its votes, is learned by exactly one learner, and the learners' counts add
   * up to the input's.
   */
  shard?: { from: number; to: number; count: number; seed: number };
  /** With `shard`: how many pods the whole catalog has (`pods` is this shard's part of it). */
  catalogPods?: number;
}

/** FNV-1a over a pod name's characters: the same as shardOf's over its bytes, since pod names
 * are ASCII (DNS-1123). For the pods a ztunnel line names, not its prefix. */
export function shardOfName(name: string, count: number, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return bucket(h, count);
}

/**
 * FNV's low bits depend only on the low bits of the seed and of each character, so names can be
 * chosen to share a bucket mod 2 or 4 whatever the seed; murmur3's finaliser (fmix32) makes
 * every bit of the seeded state count before the reduction.
 */
function bucket(h: number, count: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % count;
}

/**
 * Whether a line another shard owns could be a ztunnel connection line: those teach the pods
 * they name (ambientEdge), which may hash to this shard. After the "[pod/…] " prefix, if there is
 * one, a ztunnel line starts with its timestamp (a digit), and with kubelet timestamps
 * (`--timestamps`) a second token follows that is not Envoy's "[" or "{". Anything passed here is
 * checked for real by isZtunnelLine; this only keeps the common lines from becoming strings.
 * Windows: the prefix is looked for within 320 bytes, past the longest a ztunnel line can carry
 * ("[pod/" + a 253-byte pod name, DNS-1123 subdomain + "/istio-proxy] ", 272 bytes: only the
 * istio-proxy container writes access logs); a timestamp within 48 bytes, past the longest
 * RFC 3339 one (35). The ztunnel line's own shape: ztunnel-format.ts.
 */
function mayBeZtunnel(b: Buffer, start: number, end: number): boolean {
  let i = start;
  if (end - start > 5 && b[start] === 0x5b && b[start + 1] === 0x70 && b[start + 4] === 0x2f) {
    i = start + 5;
    const stop = Math.min(end, start + 320);
    while (i < stop && !(b[i] === 0x5d && b[i + 1] === 0x20)) i++; // "] "
    i += 2;
  }
  if (i >= end || b[i] < 0x30 || b[i] > 0x39) return false;
  const tsEnd = Math.min(end, i + 48);
  while (i < tsEnd && b[i] !== 0x20 && b[i] !== 0x09) i++;
  i++;
  return i < end && b[i] !== 0x5b && b[i] !== 0x7b; // not "[" / "{": Envoy after a kubelet timestamp
}

const OWNED = 1,
  ZTUNNEL_ONLY = 2;

/** The bucket a line's bytes belong to (see LearnOptions.shard): FNV-1a over the pod name,
 * from a per-run seed, so no one can name pods to crowd one shard's share of the bound. */
export function shardOf(b: Buffer, start: number, end: number, count: number, seed = 0): number {
  // "[pod/" = 5b 70 6f 64 2f
  if (end - start < 6 || b[start] !== 0x5b || b[start + 1] !== 0x70 || b[start + 2] !== 0x6f) return 0;
  if (b[start + 3] !== 0x64 || b[start + 4] !== 0x2f) return 0;
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = start + 5; i < end && b[i] !== 0x2f; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return bucket(h, count);
}

interface PodBuffer {
  node: WorkloadNode;
  nsVotes: Map<string, number>;
  /** Namespaces the pod's short-name calls resolved in (weaker than inbound SNI votes). */
  callVotes: Map<string, number>;
  /** The namespace a ztunnel line named for this pod (authoritative). */
  ns?: string;
  shape: ProxyInfo | null;
}

/** How each pod was placed, for the report. */
export interface Placement {
  pod: string;
  namespace: string;
  workload: string;
  how: "catalog" | "inferred" | "defaulted" | "ambiguous";
  proxy: ProxyInfo;
}

/**
 * Pods held while learning (before they are placed into workloads): the learner's memory bound,
 * about 2.4 KB per pod with its edges (≈ 19 MB here). Beyond it the idlest pods, or those the
 * catalog does not know, are evicted and counted in the report.
 */
/** The kubelet's timestamp `kubectl logs --timestamps` adds: 2026-11-20T10:00:06.830123456Z (or an offset). */
const KUBELET_TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d) /;

/**
 * The line without the kubelet's timestamp. Only a timestamp followed by what starts an access
 * log (Envoy's "[" or "{", or ztunnel's own timestamp) is the kubelet's: a space-separated
 * ztunnel line starts with its own timestamp and "info", which must stay.
 */
function stripKubeletTs(line: string): string {
  const c0 = line.charCodeAt(0);
  if (c0 < 48 || c0 > 57) return line;
  const ts = KUBELET_TS.exec(line);
  if (!ts) return line;
  const next = line.charCodeAt(ts[0].length);
  return next === 91 || next === 123 || (next >= 48 && next <= 57) ? line.slice(ts[0].length) : line;
}

export const SCRATCH_PODS = 8_000;
/** Edges held while learning (~1 KB each): with SCRATCH_PODS, what the heap bound is sized for. */
export const SCRATCH_EDGES = 30_000;

export class AccessLogLearner {
  readonly skipped: Record<SkipReason, number> = {
    "not-access-log": 0,
    "malformed-json": 0,
    "too-long": 0,
    unattributed: 0,
    "other-cluster": 0,
    "not-proxy-container": 0,
    "ztunnel-log": 0,
    "waypoint-cluster": 0,
    "graph-full": 0,
  };
  lines = 0;
  records = 0;
  bytes = 0;
  /** Per-pod buffers; the namespace is decided at the end from inbound SNI/cluster hosts. */
  private readonly pods = new Map<string, PodBuffer>();
  /**
   * Keyed "?/pod" until finish(); up to SCRATCH_PODS pods, evicting pods the catalog does not know
   * (or the idlest), counted in the report.
   */
  private readonly scratch: Graph;
  private readonly fixed: PodBuffer | null; // --workload: every unprefixed line belongs to it

  constructor(readonly opts: LearnOptions) {
    // Shards share the bound: together they hold what one learner would.
    const share = opts.shard ? (opts.shard.to - opts.shard.from) / opts.shard.count : 1;
    this.scratch = new Graph({
      ...DEFAULT_LIMITS,
      maxWorkloads: Math.ceil(SCRATCH_PODS * share),
      maxEdgesTotal: Math.ceil(SCRATCH_EDGES * share),
    });
    const pods = opts.pods;
    // A shard gets only its part of the catalog, possibly none of it: whether pods back the
    // workloads is decided by the whole catalog's having pods.
    if ((opts.catalogPods ?? pods?.size ?? 0) > 0 && pods)
      this.scratch.backed = (k) => (k.startsWith("?/") ? pods.lookup(k.slice(2), null) !== null : true);
    this.scratch.onEvict = (n) => {
      for (const p of n.pods) this.pods.delete(p);
    };
    const [ns, name] = opts.workload?.split("/") ?? [];
    const node = opts.workload ? this.scratch.node(ns, name) : null;
    this.fixed = node ? { node, nsVotes: new Map(), callVotes: new Map(), shape: null } : null;
  }

  async learnStream(input: AsyncIterable<Buffer>): Promise<void> {
    const shard = this.opts.shard;
    const keep =
      shard &&
      ((b: Buffer, s: number, e: number) => {
        const k = shardOf(b, s, e, shard.count, shard.seed);
        if (k >= shard.from && k < shard.to) return OWNED;
        return mayBeZtunnel(b, s, e) ? ZTUNNEL_ONLY : 0;
      });
    for await (const batch of readLineBatches(input, undefined, keep))
      for (const l of batch) {
        if (shard && shard.from !== 0 && "tooLong" in l) continue; // bucket 0's learner counts those
        if ("text" in l && l.mark === ZTUNNEL_ONLY) {
          this.ambientOnly(l.text); // another shard counts it; this one learns the pods it owns
          continue;
        }
        this.lines++;
        if ("tooLong" in l) {
          this.skipped["too-long"]++;
          this.bytes += l.tooLong + 1;
          continue;
        }
        this.bytes += l.text.length + 1;
        this.learnLine(l.text);
      }
  }

  /** A ztunnel line another shard counts: only the ambient edges of pods this shard owns. */
  private ambientOnly(raw: string): void {
    const p = splitPrefix(raw);
    if (p && p.container !== "istio-proxy") return;
    let line = p ? p.rest : raw;
    line = stripKubeletTs(line);
    if (isZtunnelLine(line)) this.ztunnelLine(line);
  }

  /** One ztunnel connection line: the ambient edge of the pod it names (ambientEdge). */
  private ztunnelLine(line: string): void {
    const z = parseZtunnel(line);
    const t = Date.parse(line.slice(0, line.search(/\s/)));
    if (z?.complete) this.ambientEdge(z, Number.isNaN(t) ? Date.now() : t);
  }

  learnLine(raw: string): void {
    let line = raw;
    let pod = "";
    const p = splitPrefix(line);
    if (p) {
      // Only the proxy's own container writes Envoy access logs; an app's lines are not traffic.
      if (p.container !== "istio-proxy") {
        this.skipped["not-proxy-container"]++;
        return;
      }
      pod = p.pod;
      line = p.rest;
    }
    // `kubectl logs --timestamps` puts the kubelet's RFC 3339 time before each line.
    line = stripKubeletTs(line);
    if (isZtunnelLine(line)) {
      // ztunnel's own pod, never a Sidecar; its connection lines teach the ambient pods' L4 edges.
      this.skipped["ztunnel-log"]++;
      if (pod) this.shapeOf(pod, { kind: "ztunnel", why: "ztunnel access-log lines" });
      this.ztunnelLine(line);
      return;
    }
    let rec: AccessRecord | null;
    if (line.charCodeAt(0) === 123 /* { */) {
      try {
        rec = parseJson(line);
      } catch {
        this.skipped["malformed-json"]++;
        return;
      }
    } else rec = parseText(line);
    if (!rec) {
      this.skipped["not-access-log"]++;
      return;
    }
    // Istio 1.15–1.17 ambient ran ztunnel on Envoy: its lines are Envoy access logs with tunnel
    // clusters (outbound_tunnel_clus_…) or its virtual_inbound chain. A ztunnel, never a Sidecar.
    if (
      rec.cluster.startsWith("outbound_tunnel_clus_") ||
      rec.cluster.startsWith("inbound_tunnel_clus_") ||
      line.includes("virtual_inbound")
    ) {
      this.skipped["ztunnel-log"]++;
      if (pod)
        this.shapeOf(pod, {
          kind: "ztunnel",
          why: "Envoy-based ztunnel lines (tunnel clusters, Istio 1.15–1.17 ambient)",
        });
      return;
    }
    const buf = this.bufferFor(pod);
    if (!buf) {
      this.skipped[pod ? "graph-full" : "unattributed"]++;
      return;
    }
    this.records++;
    this.record(buf, rec);
  }

  private bufferFor(pod: string): PodBuffer | null {
    if (!pod) return this.fixed;
    let b = this.pods.get(pod);
    if (!b) {
      // Keyed by pod name only: pods are placed in namespaces (and merged into workloads) at finish().
      const node = this.scratch.node("?", pod);
      if (!node) return null;
      node.pods.add(pod);
      b = { node, nsVotes: new Map(), callVotes: new Map(), shape: null };
      this.pods.set(pod, b);
    }
    return b;
  }

  private shapeOf(pod: string, p: ProxyInfo): void {
    const b = this.bufferFor(pod);
    if (b && !b.shape) b.shape = p;
  }

  private record(b: PodBuffer, r: AccessRecord): void {
    const at = Number.isNaN(r.startMs) ? Date.now() : r.startMs;
    const us = Math.max(0, Math.round(r.durationMs * 1000));
    const c = parseCluster(r.cluster);
    const proto = r.protocol || "TCP";
    if (r.sni && (c.kind === "inbound" || c.kind === "outbound")) b.node.tlsRequests++;
    switch (c.kind) {
      case "outbound":
        this.voteByShortName(b, r.authority, c.host);
        this.scratch.observe(
          b.node,
          { dir: "outbound", cluster: r.cluster, authority: r.authority, proto },
          r.code,
          us,
          at,
          r.method,
        );
        return;
      case "inbound": {
        // The SNI (mTLS) or an old-style inbound cluster names the serving service: its namespace.
        const host = r.sni ? parseCluster(r.sni).host : c.host;
        const ns = host ? hostNamespace(host, this.opts.clusterDomain) : null;
        if (ns) b.nsVotes.set(ns, (b.nsVotes.get(ns) ?? 0) + 1);
        this.scratch.observe(
          b.node,
          { dir: "inbound", cluster: r.cluster, authority: r.authority, proto },
          r.code,
          us,
          at,
        );
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
        this.scratch.addUnknown(
          b.node,
          {
            kind: c.kind,
            dst: r.upstreamHost || r.downstreamLocal,
            authority: r.authority,
            sni: r.sni,
            proto: r.method ? "HTTP" : r.sni ? "TLS" : "TCP",
          },
          s,
        );
        return;
      }
      default:
        // A REGISTRY_ONLY refusal: no upstream cluster, route "block_all" (Istio httproute.go
        // buildCatchAllVirtualHost, DirectResponse 502). The requested host is what to learn.
        if (!r.cluster && r.route === "block_all") {
          const s: Stats = emptyStats(at);
          s.count = 1;
          s.err5xx = 1;
          this.scratch.addUnknown(
            b.node,
            { kind: "blackhole", dst: r.downstreamLocal, authority: r.authority, sni: r.sni, proto: "HTTP" },
            s,
          );
          return;
        }
        if (WAYPOINT_CLUSTER.test(r.cluster)) {
          this.skipped["waypoint-cluster"]++;
          b.shape ??= { kind: "waypoint", why: `waypoint-only cluster ${r.cluster.split("|")[0]}` };
          return;
        }
        this.skipped["other-cluster"]++;
    }
  }

  /**
   * One ztunnel connection: the client pod's outbound L4 edge to the service (from the client
   * ztunnel's "outbound" line) or the server pod's inbound edge on the application port (from the
   * server ztunnel's "inbound" line). Both pods are ambient pods: no Sidecar, their namespace as
   * ztunnel names it.
   */
  private ambientEdge(z: ZtunnelRecord, at: number): void {
    const out = z.direction === "outbound";
    const pod = out ? z.srcPod : z.dstPod,
      ns = out ? z.srcNamespace : z.dstNamespace;
    if (!pod || !ns || (out && !z.dstService) || !z.dstPort) return;
    // Sharded: the pod is learned where its own lines are, whichever shard holds the ztunnel's.
    const shard = this.opts.shard;
    if (shard) {
      const k = shardOfName(pod, shard.count, shard.seed);
      if (k < shard.from || k >= shard.to) return;
    }
    const b = this.bufferFor(pod);
    if (!b) return;
    b.ns = ns;
    b.shape ??= { kind: "ambient", why: "ztunnel connection log: an ambient pod, no sidecar" };
    const us = Math.max(0, Math.round(z.durationMs * 1000));
    this.scratch.observe(
      b.node,
      out
        ? { dir: "outbound", cluster: `outbound|${z.dstPort}||${z.dstService}`, authority: "", proto: "TCP" }
        : { dir: "inbound", cluster: `inbound|${z.dstPort}||`, authority: "", proto: "TCP" },
      0,
      us,
      at,
    );
  }

  /**
   * A short name (`orders-api:8080`, no dot) is completed with the caller's own namespace by its
   * resolv.conf search list (`<ns>.svc.<domain>` first), so the cluster it reached names the
   * namespace the caller runs in.
   */
  private voteByShortName(b: PodBuffer, authority: string, host: string | null): void {
    if (!host || !authority) return;
    const name = authority.replace(/:\d+$/, "");
    if (!name || name.includes(".") || !host.startsWith(`${name}.`)) return;
    const ns = hostNamespace(host, this.opts.clusterDomain);
    if (ns && host === `${name}.${ns}.svc.${this.opts.clusterDomain}`)
      b.callVotes.set(ns, (b.callVotes.get(ns) ?? 0) + 1);
  }

  /**
   * Place every pod (namespace, workload, proxy kind) and return the learned graph. With a pod
   * catalog, the catalog decides; without one, the namespace is the one inbound mTLS SNI votes
   * for across all inputs (this learner sees them all), else the namespace its short-name calls
   * resolved in, else --default-namespace, and the
   * workload and gateway-ness are guesses from the pod name: every such pod is listed.
   */
  finish(into: Graph = new Graph()): { graph: Graph; placements: Placement[] } {
    const placements: Placement[] = [];
    if (this.fixed) into.mergeNode(this.fixed.node, this.fixed.node.namespace);
    for (const [pod, b] of this.pods) {
      // Inbound mTLS SNI first (what the pod serves); a sidecar's short-name calls come second.
      const best = b.ns || topVote(b.nsVotes);
      const cat = this.opts.pods?.lookup(pod, best || null);
      let ns: string, workload: string, how: Placement["how"], proxy: ProxyInfo;
      if (cat && !("ambiguous" in cat)) {
        ({ namespace: ns, workload } = cat);
        how = "catalog";
        proxy =
          b.shape && (cat.proxy.kind === "unknown" || (b.shape.kind === "ambient" && cat.proxy.kind === "none"))
            ? b.shape
            : cat.proxy;
        b.node.labels = cat.labels;
      } else {
        workload = workloadFromPod(pod);
        proxy =
          b.shape ??
          (looksLikeGateway(workload)
            ? { kind: "gateway", why: "guessed from the pod name (no pod catalog)" }
            : { kind: "sidecar", why: "guessed: istio-proxy lines with no gateway/waypoint shape" });
        // A gateway forwards the client's Host as it came; only an app's own lookup went through
        // its pod's resolv.conf search list, so only a sidecar's short names place it.
        const byCalls = proxy.kind === "sidecar" ? topVote(b.callVotes) : "";
        ns = best || byCalls || (proxy.kind === "gateway" ? "istio-system" : this.opts.defaultNamespace);
        how = cat ? "ambiguous" : best || byCalls ? "inferred" : "defaulted";
      }
      b.node.proxy = proxy;
      into.mergeNode(b.node, ns, workload);
      placements.push({ pod, namespace: ns, workload, how, proxy });
      // Each pod's scratch data goes as soon as it is merged: the two graphs never both hold it all.
      this.pods.delete(pod);
      this.scratch.nodes.delete(b.node.key);
    }
    preferSidecars(into, placements);
    // What the per-pod stage had to drop or evict is the result's too.
    into.addLosses(this.scratch);
    return { graph: into, placements };
  }
}

/**
 * A workload whose own istio-proxy wrote access-log lines is a sidecar workload, whatever a
 * ztunnel line says about it (ztunnel names the client of every connection it carries).
 */
export function preferSidecars(graph: Graph, placements: Placement[]): void {
  for (const p of placements)
    if (p.proxy.kind === "sidecar") {
      const n = graph.nodes.get(`${p.namespace}/${p.workload}`);
      if (n?.proxy.kind === "ambient") n.proxy = p.proxy;
    }
}

function topVote(votes: Map<string, number>): string {
  let best = "",
    most = 0;
  for (const [v, n] of votes)
    if (n > most || (n === most && v < best)) {
      best = v;
      most = n;
    }
  return best;
}

// The dependency graph every source feeds (access logs, filter reports, Prometheus):
// workload (namespace/name) → edges (Istio cluster, timings) and unknown destinations.
// Bounded: hostile input cannot grow it without limit. Caps are per direction (junk inbound
// edges can never crowd out outbound ones), per source (one pod cannot fill its workload's
// share), and global; a full graph evicts workloads no pod backs (then the least recently
// seen) instead of refusing new ones. Every drop and eviction is counted by reason.
import { BUCKETS, bucketOf } from "./histogram.js";
import { parseCluster, stripPort } from "./cluster-name.js";
import type { ProxyInfo } from "./identity.js";

export type Direction = "outbound" | "inbound";

export interface Stats {
  count: number;
  err4xx: number;
  err5xx: number;
  buckets: number[]; // meshtune-v1 latency histogram
  sumUs: number;
  firstSeenMs: number;
  lastSeenMs: number;
}

/** Report v2 per-edge timings of the reporting end (filter): upstream time, sizes, method classes. */
export interface Timing {
  upCount: number;
  upSumUs: number;
  upBuckets: number[]; // meshtune-v1
  txBytes: number;
  rxBytes: number;
  idempotent: number;
  other: number;
}

/** RFC 9110 9.2.2 idempotent methods (the filter's filter.ts idempotent() uses the same list). */
export const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export function emptyTiming(): Timing {
  return { upCount: 0, upSumUs: 0, upBuckets: zeros(), txBytes: 0, rxBytes: 0, idempotent: 0, other: 0 };
}

export function mergeTiming(into: Timing, from: Timing): void {
  into.upCount += from.upCount;
  into.upSumUs += from.upSumUs;
  into.txBytes += from.txBytes;
  into.rxBytes += from.rxBytes;
  into.idempotent += from.idempotent;
  into.other += from.other;
  for (let i = 0; i < BUCKETS; i++) into.upBuckets[i] += from.upBuckets[i];
}

export interface EdgeKey {
  dir: Direction;
  cluster: string;
  authority: string;
  proto: string;
}

export interface Edge extends Stats, EdgeKey {
  /** Present once a v2 report carried timings for this edge. */
  timing: Timing | null;
}

export interface UnknownDest extends Stats {
  kind: "passthrough" | "blackhole";
  dst: string; // original destination ip:port
  authority: string;
  sni: string;
  proto: string;
}

export interface Limits {
  maxWorkloads: number;
  maxOutboundPerWorkload: number;
  maxInboundPerWorkload: number;
  maxUnknownPerWorkload: number;
  /** All edges and unknown destinations of the graph: the memory bound (~1 KB each). */
  maxEdgesTotal: number;
  /** Share of a workload's outbound cap that one source (pod) may create. */
  sourceShare: number;
}
export const DEFAULT_LIMITS: Limits = {
  maxWorkloads: 20_000,
  maxOutboundPerWorkload: 5_000,
  maxInboundPerWorkload: 256,
  maxUnknownPerWorkload: 1_000,
  maxEdgesTotal: 200_000,
  sourceShare: 0.5,
};

export type DropReason = "workload-cap" | "outbound-cap" | "inbound-cap" | "unknown-cap" | "total-cap" | "source-share";
export const DROP_REASONS: DropReason[] = [
  "workload-cap",
  "outbound-cap",
  "inbound-cap",
  "unknown-cap",
  "total-cap",
  "source-share",
];

function zeros(): number[] {
  const a: number[] = [];
  for (let i = 0; i < BUCKETS; i++) a.push(0);
  return a;
}

export function emptyStats(atMs: number): Stats {
  return { count: 0, err4xx: 0, err5xx: 0, buckets: zeros(), sumUs: 0, firstSeenMs: atMs, lastSeenMs: atMs };
}

// Edges and unknown destinations are built with one fixed property order so the merge
// code stays monomorphic (a spread-built object gets a different hidden class per site).
function newEdge(e: EdgeKey, atMs: number): Edge {
  return {
    dir: e.dir,
    cluster: e.cluster,
    authority: e.authority,
    proto: e.proto,
    count: 0,
    err4xx: 0,
    err5xx: 0,
    buckets: zeros(),
    sumUs: 0,
    firstSeenMs: atMs,
    lastSeenMs: atMs,
    timing: null,
  };
}

function newUnknown(u: Omit<UnknownDest, keyof Stats>, atMs: number): UnknownDest {
  return {
    kind: u.kind,
    dst: u.dst,
    authority: u.authority,
    sni: u.sni,
    proto: u.proto,
    count: 0,
    err4xx: 0,
    err5xx: 0,
    buckets: zeros(),
    sumUs: 0,
    firstSeenMs: atMs,
    lastSeenMs: atMs,
  };
}

export function mergeStats(into: Stats, from: Stats): void {
  into.count += from.count;
  into.err4xx += from.err4xx;
  into.err5xx += from.err5xx;
  into.sumUs += from.sumUs;
  const a = into.buckets,
    b = from.buckets;
  for (let i = 0; i < BUCKETS; i++) a[i] += b[i];
  if (from.firstSeenMs < into.firstSeenMs) into.firstSeenMs = from.firstSeenMs;
  if (from.lastSeenMs > into.lastSeenMs) into.lastSeenMs = from.lastSeenMs;
}

export class WorkloadNode {
  readonly edges = new Map<string, Edge>();
  readonly unknown = new Map<string, UnknownDest>();
  readonly pods = new Set<string>();
  labels: Record<string, string> | null = null;
  /** What kind of proxy this workload runs; only "sidecar" gets a Sidecar. Offline guesses say so in `why`. */
  proxy: ProxyInfo = { kind: "sidecar", why: "reports/logs from a sidecar" };
  /** Graph tick of the last observation (eviction order). */
  touched = 0;
  /** Outbound edges created per source (pod), for per-source fairness. */
  readonly bySource = new Map<string, number>();
  outbound = 0;
  inbound = 0;
  /** Requests that reached this proxy over TLS it saw the SNI of (access logs' requested server
   * name): inbound mesh mTLS, and at a gateway its downstream TLS. Evidence for CryptoMB. */
  tlsRequests = 0;
  constructor(
    readonly namespace: string,
    readonly name: string,
  ) {}
  get key(): string {
    return `${this.namespace}/${this.name}`;
  }
}

/**
 * Edge identity: the cluster name (it already encodes the direction: "inbound|…"/"outbound|…"),
 * plus, outbound, the requested authority: one cluster may serve several requested hosts (a
 * VirtualService routing another host to it; an egress gateway), and each must be imported.
 */
export function edgeKey(dir: Direction, cluster: string, authority: string): string {
  const c = parseCluster(cluster);
  if (c.kind === "outbound" && dir === "outbound" && authority)
    return `${cluster}#${stripPort(authority).toLowerCase()}`;
  return c.kind === dir ? cluster : `${dir}>${cluster}`;
}

export class Graph {
  readonly nodes = new Map<string, WorkloadNode>();
  readonly dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  /** Workloads removed to make room: `unbacked` had no pod behind them; `idle` were the least recently seen. */
  readonly evicted = { unbacked: 0, idle: 0, fairness: 0 };
  /** Edges + unknown destinations held now, in all and per namespace. */
  size = 0;
  private readonly nsSize = new Map<string, number>();
  private tick = 0;
  /** Whether a live pod backs this workload key ("ns/name"); null: nothing knows (offline without a catalog). */
  backed: ((key: string) => boolean) | null = null;
  /** Called for each evicted workload (so owners of per-workload state can drop theirs). */
  onEvict: (n: WorkloadNode) => void = () => {};
  constructor(readonly limits: Limits = DEFAULT_LIMITS) {}

  node(namespace: string, name: string): WorkloadNode | null {
    const key = `${namespace}/${name}`;
    let n = this.nodes.get(key);
    if (!n) {
      if (this.nodes.size >= this.limits.maxWorkloads && !this.evict(key)) {
        this.dropped["workload-cap"]++;
        return null;
      }
      n = new WorkloadNode(namespace, name);
      this.nodes.set(key, n);
    }
    n.touched = ++this.tick;
    return n;
  }

  /** Forget a workload (its pods are gone, or eviction). */
  remove(key: string): void {
    const n = this.nodes.get(key);
    if (!n) return;
    const held = n.edges.size + n.unknown.size;
    this.version++;
    this.size -= held;
    const left = (this.nsSize.get(n.namespace) ?? 0) - held;
    if (left > 0) this.nsSize.set(n.namespace, left);
    else this.nsSize.delete(n.namespace);
    this.nodes.delete(key);
    this.onEvict(n);
  }

  /**
   * Make room for `incoming`: evict a tenth of the cap at once (amortised O(1) per insert), first
   * workloads no pod backs, then, if a backing oracle exists, never a backed one; without one
   * (offline, no catalog), the least recently seen. False when nothing may be evicted.
   */
  private evict(incoming: string): boolean {
    const want = Math.max(1, Math.floor(this.limits.maxWorkloads / 10));
    const backed = this.backed;
    if (backed && !backed(incoming)) return false; // an unbacked newcomer never displaces anyone
    const victims = [...this.nodes.values()]
      .filter((n) => !backed || !backed(n.key))
      .sort((a, b) => a.touched - b.touched)
      .slice(0, want);
    for (const v of victims) {
      this.remove(v.key);
      if (backed) this.evicted.unbacked++;
      else this.evicted.idle++;
    }
    return victims.length > 0;
  }

  private grew(n: WorkloadNode): void {
    this.size++;
    this.nsSize.set(n.namespace, (this.nsSize.get(n.namespace) ?? 0) + 1);
  }

  /**
   * Room for one more entry of `n`. At the total cap a full graph never freezes: it evicts (a
   * hundredth of the cap at a time) first workloads no live pod backs, then the least recently
   * seen workloads of the namespace holding the most entries, or, when that is n's own namespace,
   * of the biggest other workload in it. Only a requester that is itself the biggest holder is
   * refused: one identity's flood fills its own share and never blocks another's new host.
   */
  private roomFor(n: WorkloadNode): boolean {
    if (this.size < this.limits.maxEdgesTotal) return true;
    // Refused before and nothing changed since: refused again without another scan, so a
    // report of thousands of new edges from the biggest holder costs one scan, not thousands.
    if (this.refused.get(n) === this.version) return false;
    const ok = this.makeRoom(n);
    if (!ok) this.refused.set(n, this.version);
    return ok;
  }
  /** Bumped by every removal: a refusal holds until something leaves the graph. */
  private version = 0;
  private readonly refused = new WeakMap<WorkloadNode, number>();

  private makeRoom(n: WorkloadNode): boolean {
    const want = Math.max(1, Math.floor(this.limits.maxEdgesTotal / 100));
    let freed = 0;
    const drop = (v: WorkloadNode, why: "unbacked" | "fairness") => {
      freed += v.edges.size + v.unknown.size;
      this.remove(v.key);
      this.evicted[why]++;
    };
    const backed = this.backed;
    if (backed)
      for (const v of [...this.nodes.values()]) {
        if (freed >= want) break;
        if (v !== n && !backed(v.key)) drop(v, "unbacked");
      }
    if (freed > 0) return true;
    let big = "",
      most = 0;
    for (const [ns, c] of this.nsSize)
      if (c > most) {
        big = ns;
        most = c;
      }
    const held = (v: WorkloadNode) => v.edges.size + v.unknown.size;
    let victims: WorkloadNode[];
    if (big !== n.namespace && (this.nsSize.get(n.namespace) ?? 0) < most)
      victims = [...this.nodes.values()].filter((v) => v.namespace === big).sort((a, b) => a.touched - b.touched);
    else {
      const biggest = [...this.nodes.values()]
        .filter((v) => v.namespace === n.namespace && v !== n)
        .sort((a, b) => held(b) - held(a))[0];
      victims = biggest && held(biggest) > held(n) ? [biggest] : [];
    }
    for (const v of victims) {
      if (freed >= want) break;
      drop(v, "fairness");
    }
    return freed > 0;
  }

  /** The edge for `e`, created on first sight; null (and counted by reason) when a cap is hit. */
  private edgeFor(n: WorkloadNode, e: EdgeKey, atMs: number, source: string): Edge | null {
    const k = edgeKey(e.dir, e.cluster, e.authority);
    let cur = n.edges.get(k);
    if (!cur) {
      const out = e.dir === "outbound";
      const cap = out ? this.limits.maxOutboundPerWorkload : this.limits.maxInboundPerWorkload;
      if ((out ? n.outbound : n.inbound) >= cap) {
        this.dropped[out ? "outbound-cap" : "inbound-cap"]++;
        return null;
      }
      if (!this.roomFor(n)) {
        this.dropped["total-cap"]++;
        return null;
      }
      if (source && out) {
        // fairness among a workload's pods; inbound edges are the workload's own ports
        const made = n.bySource.get(source) ?? 0;
        if (made >= Math.max(1, Math.floor(cap * this.limits.sourceShare))) {
          this.dropped["source-share"]++;
          return null;
        }
        n.bySource.set(source, made + 1);
      }
      cur = newEdge(e, atMs);
      n.edges.set(k, cur);
      if (out) n.outbound++;
      else n.inbound++;
      this.grew(n);
    }
    return cur;
  }

  /** Merge stats into an edge; false when a cap refused it. `source` (a pod) enables per-source fairness. */
  addEdge(n: WorkloadNode, e: EdgeKey, s: Stats, source = "", timing: Timing | null = null): boolean {
    const cur = this.edgeFor(n, e, s.firstSeenMs, source);
    if (!cur) return false;
    n.touched = ++this.tick;
    if (!cur.authority && e.authority) cur.authority = e.authority;
    mergeStats(cur, s);
    if (timing) mergeTiming((cur.timing ??= emptyTiming()), timing);
    return true;
  }

  /** One request/connection, counted in place (the hot path of the access-log learner). */
  observe(n: WorkloadNode, e: EdgeKey, code: number, us: number, atMs: number, method = ""): void {
    const cur = this.edgeFor(n, e, atMs, "");
    if (!cur) return;
    if (method) {
      const t = (cur.timing ??= emptyTiming());
      if (IDEMPOTENT.has(method)) t.idempotent++;
      else t.other++;
    }
    n.touched = ++this.tick;
    cur.count++;
    if (code >= 500) cur.err5xx++;
    else if (code >= 400) cur.err4xx++;
    cur.sumUs += us;
    cur.buckets[bucketOf(us)]++;
    if (atMs < cur.firstSeenMs) cur.firstSeenMs = atMs;
    if (atMs > cur.lastSeenMs) cur.lastSeenMs = atMs;
  }

  addUnknown(n: WorkloadNode, u: Omit<UnknownDest, keyof Stats>, s: Stats): boolean {
    const k = `${u.kind}|${u.dst}|${u.authority || u.sni}`;
    let cur = n.unknown.get(k);
    if (!cur) {
      if (n.unknown.size >= this.limits.maxUnknownPerWorkload) {
        this.dropped["unknown-cap"]++;
        return false;
      }
      if (!this.roomFor(n)) {
        this.dropped["total-cap"]++;
        return false;
      }
      cur = newUnknown(u, s.firstSeenMs);
      n.unknown.set(k, cur);
      this.grew(n);
    }
    n.touched = ++this.tick;
    mergeStats(cur, s);
    return true;
  }

  /** Count another graph's drops and evictions as this one's (a learner stage or shard merged in). */
  addLosses(from: { dropped: Record<DropReason, number>; evicted: Graph["evicted"] }): void {
    for (const r of DROP_REASONS) this.dropped[r] += from.dropped[r];
    this.evicted.unbacked += from.evicted.unbacked;
    this.evicted.idle += from.evicted.idle;
    this.evicted.fairness += from.evicted.fairness;
  }

  /** Merge another graph (e.g. one input file) into this one. */
  merge(other: Graph): void {
    for (const o of other.nodes.values()) this.mergeNode(o, o.namespace);
  }

  /** Merge one workload's observations as `namespace/name` (the learner decides both late). */
  mergeNode(o: WorkloadNode, namespace: string, name = o.name): void {
    const n = this.node(namespace, name);
    if (!n) return;
    for (const p of o.pods) n.pods.add(p);
    n.labels ??= o.labels;
    n.tlsRequests += o.tlsRequests;
    if (o.proxy.kind !== "sidecar") n.proxy = o.proxy;
    for (const e of o.edges.values()) this.addEdge(n, e, e, "", e.timing);
    for (const u of o.unknown.values()) this.addUnknown(n, u, u);
  }
}

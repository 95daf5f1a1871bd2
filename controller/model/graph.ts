// The dependency graph every source feeds (access logs, filter reports, Prometheus):
// workload (namespace/name) → edges (Istio cluster, timings) and unknown destinations.
// Bounded: hostile input cannot grow it without limit; what does not fit is counted.
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

export interface Edge extends Stats {
  dir: Direction;
  cluster: string;
  authority: string;
  proto: string;
}

export interface UnknownDest extends Stats {
  kind: "passthrough" | "blackhole";
  dst: string;       // original destination ip:port
  authority: string;
  sni: string;
  proto: string;
}

export interface Limits { maxWorkloads: number; maxEdgesPerWorkload: number; maxUnknownPerWorkload: number }
export const DEFAULT_LIMITS: Limits = { maxWorkloads: 100_000, maxEdgesPerWorkload: 10_000, maxUnknownPerWorkload: 1_000 };

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
function newEdge(e: Omit<Edge, keyof Stats>, atMs: number): Edge {
  return { dir: e.dir, cluster: e.cluster, authority: e.authority, proto: e.proto, count: 0, err4xx: 0, err5xx: 0, buckets: zeros(), sumUs: 0, firstSeenMs: atMs, lastSeenMs: atMs };
}

function newUnknown(u: Omit<UnknownDest, keyof Stats>, atMs: number): UnknownDest {
  return { kind: u.kind, dst: u.dst, authority: u.authority, sni: u.sni, proto: u.proto, count: 0, err4xx: 0, err5xx: 0, buckets: zeros(), sumUs: 0, firstSeenMs: atMs, lastSeenMs: atMs };
}

export function mergeStats(into: Stats, from: Stats): void {
  into.count += from.count;
  into.err4xx += from.err4xx;
  into.err5xx += from.err5xx;
  into.sumUs += from.sumUs;
  const a = into.buckets, b = from.buckets;
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
  constructor(readonly namespace: string, readonly name: string) {}
  get key(): string { return `${this.namespace}/${this.name}`; }
}

/**
 * Edge identity: the cluster name (it already encodes the direction: "inbound|…"/"outbound|…"),
 * plus, outbound, the requested authority: one cluster may serve several requested hosts (a
 * VirtualService routing another host to it; an egress gateway), and each must be imported.
 */
export function edgeKey(dir: Direction, cluster: string, authority: string): string {
  const c = parseCluster(cluster);
  if (c.kind === "outbound" && dir === "outbound" && authority) return `${cluster}#${stripPort(authority).toLowerCase()}`;
  return c.kind === dir ? cluster : `${dir}>${cluster}`;
}

export class Graph {
  readonly nodes = new Map<string, WorkloadNode>();
  readonly dropped = { workloads: 0, edges: 0, unknown: 0 };
  constructor(readonly limits: Limits = DEFAULT_LIMITS) {}

  node(namespace: string, name: string): WorkloadNode | null {
    const key = `${namespace}/${name}`;
    let n = this.nodes.get(key);
    if (!n) {
      if (this.nodes.size >= this.limits.maxWorkloads) { this.dropped.workloads++; return null; }
      n = new WorkloadNode(namespace, name);
      this.nodes.set(key, n);
    }
    return n;
  }

  /** The edge for `e`, created on first sight; null (and counted) when the workload is full. */
  private edgeFor(n: WorkloadNode, e: Omit<Edge, keyof Stats>, atMs: number): Edge | null {
    const k = edgeKey(e.dir, e.cluster, e.authority);
    let cur = n.edges.get(k);
    if (!cur) {
      if (n.edges.size >= this.limits.maxEdgesPerWorkload) { this.dropped.edges++; return null; }
      cur = newEdge(e, atMs);
      n.edges.set(k, cur);
    }
    return cur;
  }

  addEdge(n: WorkloadNode, e: Omit<Edge, keyof Stats>, s: Stats): void {
    const cur = this.edgeFor(n, e, s.firstSeenMs);
    if (!cur) return;
    if (!cur.authority && e.authority) cur.authority = e.authority;
    mergeStats(cur, s);
  }

  /** One request/connection, counted in place (the hot path of the access-log learner). */
  observe(n: WorkloadNode, e: Omit<Edge, keyof Stats>, code: number, us: number, atMs: number): void {
    const cur = this.edgeFor(n, e, atMs);
    if (!cur) return;
    cur.count++;
    if (code >= 500) cur.err5xx++;
    else if (code >= 400) cur.err4xx++;
    cur.sumUs += us;
    cur.buckets[bucketOf(us)]++;
    if (atMs < cur.firstSeenMs) cur.firstSeenMs = atMs;
    if (atMs > cur.lastSeenMs) cur.lastSeenMs = atMs;
  }

  addUnknown(n: WorkloadNode, u: Omit<UnknownDest, keyof Stats>, s: Stats): void {
    const k = `${u.kind}|${u.dst}|${u.authority || u.sni}`;
    let cur = n.unknown.get(k);
    if (!cur) {
      if (n.unknown.size >= this.limits.maxUnknownPerWorkload) { this.dropped.unknown++; return; }
      cur = newUnknown(u, s.firstSeenMs);
      n.unknown.set(k, cur);
    }
    mergeStats(cur, s);
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
    if (o.proxy.kind !== "sidecar") n.proxy = o.proxy;
    for (const e of o.edges.values()) this.addEdge(n, e, e);
    for (const u of o.unknown.values()) this.addUnknown(n, u, u);
  }
}

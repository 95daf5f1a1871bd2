// Per-edge aggregates kept in the root context: bounded (maxEdges), with a dropped counter.
import { BUCKETS, bucketOf } from "./bounds";

export class Edge {
  count: u64 = 0;
  err4xx: u64 = 0;
  err5xx: u64 = 0;
  flagged: u64 = 0;      // requests with any Envoy response flag (UF, UH, URX, ...)
  sumUs: u64 = 0;
  buckets: u64[] = new Array<u64>(BUCKETS);
  txBytes: u64 = 0;      // TCP edges: bytes the downstream sent (onDownstreamData)
  rxBytes: u64 = 0;      // TCP edges: bytes sent back (onUpstreamData)
  constructor(public dir: string, public cluster: string, public authority: string, public proto: string) {
    for (let i = 0; i < BUCKETS; i++) this.buckets[i] = 0;
  }
  observe(code: i64, us: u64, flagged: bool): void {
    this.count++;
    if (code >= 500) this.err5xx++; else if (code >= 400) this.err4xx++;
    if (flagged) this.flagged++;
    this.sumUs += us;
    this.buckets[bucketOf(us)]++;
  }
  add(o: Edge): void {
    this.count += o.count; this.err4xx += o.err4xx; this.err5xx += o.err5xx; this.flagged += o.flagged; this.sumUs += o.sumUs;
    this.txBytes += o.txBytes; this.rxBytes += o.rxBytes;
    for (let i = 0; i < BUCKETS; i++) this.buckets[i] += o.buckets[i];
  }
}

/** Passthrough/BlackHole traffic (and requests Istio's `block_all` route refused) with its original destination. */
export class Unknown {
  count: u64 = 0;
  constructor(public cluster: string, public dst: string, public authority: string, public sni: string, public route: string) {}
}

export class Table {
  edges: Map<string, Edge> = new Map();
  unknown: Map<string, Unknown> = new Map();
  keys: string[] = [];          // insertion order, for a stable report
  unknownKeys: string[] = [];
  startMs: u64 = 0;
  get size(): i32 { return this.keys.length + this.unknownKeys.length; }
}

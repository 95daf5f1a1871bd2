// Per-edge aggregates kept in the root context: bounded (maxEdges), with a dropped counter.
import { BUCKETS, bucketOf } from "./bounds";

export class Edge {
  count: u64 = 0;
  err4xx: u64 = 0;
  err5xx: u64 = 0;
  flagged: u64 = 0; // requests with any Envoy response flag (UF, UH, URX, ...)
  sumUs: u64 = 0;
  buckets: u64[] = new Array<u64>(BUCKETS);
  txBytes: u64 = 0; // bytes the downstream sent: TCP onDownstreamData; HTTP request.total_size
  rxBytes: u64 = 0; // bytes sent back: TCP onUpstreamData; HTTP response.total_size
  // Upstream time (HTTP): first byte to the upstream → last byte back. Outbound, that is the
  // network plus the server side; inbound, the application's own time.
  upCount: u64 = 0;
  upSumUs: u64 = 0;
  upBuckets: u64[] = new Array<u64>(BUCKETS);
  idempotent: u64 = 0; // RFC 9110 9.2.2 idempotent methods (GET HEAD OPTIONS TRACE PUT DELETE)
  otherMethods: u64 = 0;
  constructor(
    public dir: string,
    public cluster: string,
    public authority: string,
    public proto: string,
  ) {
    for (let i = 0; i < BUCKETS; i++) {
      this.buckets[i] = 0;
      this.upBuckets[i] = 0;
    }
  }
  observe(code: i64, us: u64, flagged: bool): void {
    this.count++;
    if (code >= 500) this.err5xx++;
    else if (code >= 400) this.err4xx++;
    if (flagged) this.flagged++;
    this.sumUs += us;
    this.buckets[bucketOf(us)]++;
  }
  /** Upstream time of one request (only when Envoy measured one: a local reply has none). */
  upstream(us: u64): void {
    this.upCount++;
    this.upSumUs += us;
    this.upBuckets[bucketOf(us)]++;
  }
  add(o: Edge): void {
    this.count += o.count;
    this.err4xx += o.err4xx;
    this.err5xx += o.err5xx;
    this.flagged += o.flagged;
    this.sumUs += o.sumUs;
    this.txBytes += o.txBytes;
    this.rxBytes += o.rxBytes;
    this.upCount += o.upCount;
    this.upSumUs += o.upSumUs;
    this.idempotent += o.idempotent;
    this.otherMethods += o.otherMethods;
    for (let i = 0; i < BUCKETS; i++) {
      this.buckets[i] += o.buckets[i];
      this.upBuckets[i] += o.upBuckets[i];
    }
  }
}

/** Passthrough/BlackHole traffic (and requests Istio's `block_all` route refused) with its original destination. */
export class Unknown {
  count: u64 = 0;
  constructor(
    public cluster: string,
    public dst: string,
    public authority: string,
    public sni: string,
    public route: string,
  ) {}
}

export class Table {
  edges: Map<string, Edge> = new Map();
  unknown: Map<string, Unknown> = new Map();
  keys: string[] = []; // insertion order, for a stable report
  unknownKeys: string[] = [];
  startMs: u64 = 0;
  get size(): i32 {
    return this.keys.length + this.unknownKeys.length;
  }
}

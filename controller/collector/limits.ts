// Admission limits for the collector's HTTP server: per-identity token buckets, an in-flight
// byte budget, and server-level timeouts and connection caps. Every refusal is counted by
// reason and answered with a status that says so (429/503/408), never silently.
import type { Server } from "node:http";
import type { Socket } from "node:net";

export interface ServerLimits {
  headersTimeoutMs: number; // slowloris: headers must arrive within this
  requestTimeoutMs: number; // the whole request, body included (never-ending chunked bodies)
  keepAliveTimeoutMs: number;
  maxConnections: number;
  maxInflightBytes: number; // bodies being received, all requests together
  ratePerSecond: number; // reports per identity
  burst: number;
  /** One identity's share of maxInflightBytes: slow bodies of one caller cannot starve the rest. */
  maxInflightPerIdentity: number;
  /** Open connections per source address, where sources are callers (the token port; not the sidecar's 127.0.0.6). */
  maxConnectionsPerSource: number;
  /** TokenReviews for tokens not in the cache: per source address and in total (junk tokens cost the API server). */
  reviewsPerSecondPerSource: number;
  reviewsPerSecond: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 20_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 512,
  maxInflightBytes: 64 << 20,
  ratePerSecond: 50,
  burst: 100,
  maxInflightPerIdentity: 8 << 20,
  maxConnectionsPerSource: 32,
  reviewsPerSecondPerSource: 5,
  reviewsPerSecond: 50,
};

/** Token bucket per key, bounded in keys (idle buckets are full and can be forgotten). */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly maxKeys = 50_000,
    private readonly now = () => Date.now(),
  ) {}
  /** Take one token; returns 0 when allowed, else the seconds until one is available. */
  take(key: string): number {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.forgetFull(t);
      b = { tokens: this.burst, at: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.perSecond);
    b.at = t;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / this.perSecond);
  }
  private forgetFull(t: number): void {
    for (const [k, b] of this.buckets)
      if (b.tokens + ((t - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(k);
    if (this.buckets.size >= this.maxKeys) this.buckets.clear(); // all busy: start over rather than grow
  }
}

/** Bytes reserved by requests whose bodies are being received. */
export class InflightBudget {
  used = 0;
  private readonly byKey = new Map<string, number>();
  constructor(
    readonly max: number,
    readonly maxPerKey = max,
  ) {}
  /** Reserve `n` bytes for `key` (an authenticated identity); false when the total or its share is spent. */
  reserve(n: number, key = ""): boolean {
    const mine = this.byKey.get(key) ?? 0;
    if (this.used + n > this.max || mine + n > this.maxPerKey) return false;
    this.used += n;
    this.byKey.set(key, mine + n);
    return true;
  }
  release(n: number, key = ""): void {
    this.used = Math.max(0, this.used - n);
    const left = (this.byKey.get(key) ?? 0) - n;
    if (left > 0) this.byKey.set(key, left);
    else this.byKey.delete(key); // the map holds only identities with bodies in flight
  }
  /** Bytes in flight for `key`. */
  of(key: string): number {
    return this.byKey.get(key) ?? 0;
  }
}

/**
 * Pre-authentication gate for TokenReview: a token the reviewer has cached costs nothing; a new
 * one takes a token from its source's bucket and from the global one. Unique junk tokens from
 * one address therefore cost the API server at most `perSource`/s, from everywhere `total`/s.
 */
export class ReviewGate {
  private readonly perSource: RateLimiter;
  private readonly total: RateLimiter;
  constructor(perSourcePerSecond: number, totalPerSecond: number, now?: () => number) {
    this.perSource = new RateLimiter(perSourcePerSecond, perSourcePerSecond * 2, 10_000, now);
    this.total = new RateLimiter(totalPerSecond, totalPerSecond * 2, 1, now);
  }
  /** 0 when a TokenReview may be made for a request from `source`, else seconds to wait. */
  admit(source: string): number {
    return this.perSource.take(source) || this.total.take("");
  }
}

/**
 * Timeouts and caps on a Node HTTP server. Node checks request/header timeouts every
 * connectionsCheckingInterval (set at createServer; see serverOptions) and emits clientError
 * with ERR_HTTP_REQUEST_TIMEOUT; we answer 408 and count it. Connections over maxConnections
 * are closed by Node, which emits 'drop' (Node ≥ 18.6): counted too.
 */
export function applyServerLimits(
  s: Server,
  l: ServerLimits,
  count: (reason: "timeout" | "connections" | "bad-request") => void,
  perSource = false,
): void {
  s.headersTimeout = l.headersTimeoutMs;
  s.requestTimeout = l.requestTimeoutMs;
  s.keepAliveTimeout = l.keepAliveTimeoutMs;
  s.maxConnections = l.maxConnections;
  s.on("drop", () => count("connections"));
  // Per source address: one slow client cannot hold every connection (the total cap alone lets
  // it). Only where sources are callers: behind the sidecar every connection is from 127.0.0.6.
  if (perSource) limitPerSource(s, l.maxConnectionsPerSource, () => count("connections"));
  s.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    const timeout = err.code === "ERR_HTTP_REQUEST_TIMEOUT" || err.code === "ERR_HTTP_HEADERS_TIMEOUT";
    count(timeout ? "timeout" : "bad-request");
    if (socket.writable && !(err.code === "ECONNRESET"))
      socket.end(
        timeout
          ? "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
          : "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
      );
    socket.destroySoon();
  });
}

/** Close connections beyond `max` open ones from the same remote address; the map holds only open ones. */
export function limitPerSource(
  s: { on(e: "connection", f: (c: Socket) => void): unknown },
  max: number,
  refused: () => void,
): void {
  const open = new Map<string, number>();
  s.on("connection", (c: Socket) => {
    const src = c.remoteAddress ?? "";
    const n = (open.get(src) ?? 0) + 1;
    if (n > max) {
      refused();
      c.destroy();
      return;
    }
    open.set(src, n);
    c.once("close", () => {
      const left = (open.get(src) ?? 1) - 1;
      if (left > 0) open.set(src, left);
      else open.delete(src);
    });
  });
}

/** createServer options: check the timeouts every second rather than Node's default 30 s. */
export const serverOptions = { connectionsCheckingInterval: 1000 };

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
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 20_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 512,
  maxInflightBytes: 64 << 20,
  ratePerSecond: 50,
  burst: 100,
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
  constructor(readonly max: number) {}
  reserve(n: number): boolean {
    if (this.used + n > this.max) return false;
    this.used += n;
    return true;
  }
  release(n: number): void {
    this.used = Math.max(0, this.used - n);
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
): void {
  s.headersTimeout = l.headersTimeoutMs;
  s.requestTimeout = l.requestTimeoutMs;
  s.keepAliveTimeout = l.keepAliveTimeoutMs;
  s.maxConnections = l.maxConnections;
  s.on("drop", () => count("connections"));
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

/** createServer options: check the timeouts every second rather than Node's default 30 s. */
export const serverOptions = { connectionsCheckingInterval: 1000 };

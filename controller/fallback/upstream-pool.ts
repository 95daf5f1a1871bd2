// Kept-alive HTTP/1.1 connections to upstreams, reused across forwarded requests: one Agent per
// upstream (dial address and port), every bound explicit, since the request path must not
// allocate without one: at most `perUpstream` sockets to one upstream (requests beyond wait in
// the Agent's queue, itself bounded by the fallback's connection limits), `freePerUpstream` idle
// ones kept (as many as may be busy: fewer closes and redials a connection on every burst's
// trough, which profiling showed as the hop's largest cost), idle ones closed after `idleMs`, and at most `upstreams` upstreams pooled (the least
// recently used one is closed and dropped first). The upstream sees the fallback's identity on
// every request either way (its sidecar originates mTLS), so sharing a connection between callers
// changes nothing about who is authorised; Node's client re-serialises each request from parsed
// headers, so no caller writes raw bytes onto a shared connection.
import { Agent } from "node:http";
import type { Socket } from "node:net";

export interface PoolLimits {
  upstreams: number;
  perUpstream: number;
  freePerUpstream: number;
  idleMs: number;
}
export const DEFAULT_POOL: PoolLimits = { upstreams: 512, perUpstream: 32, freePerUpstream: 32, idleMs: 30_000 };

export class UpstreamPool {
  private readonly agents = new Map<string, Agent>(); // insertion order = recency

  constructor(
    private readonly dial: (host: string, port: number) => Socket,
    private readonly limits: PoolLimits = DEFAULT_POOL,
  ) {}

  /** The Agent for one upstream, created on first use. */
  agent(host: string, port: number): Agent {
    const key = `${host}|${port}`;
    let a = this.agents.get(key);
    if (a) {
      this.agents.delete(key); // refresh recency
      this.agents.set(key, a);
      return a;
    }
    if (this.agents.size >= this.limits.upstreams) {
      const [oldest, old] = this.agents.entries().next().value as [string, Agent];
      this.agents.delete(oldest);
      old.destroy();
    }
    a = new Agent({
      keepAlive: true,
      maxSockets: this.limits.perUpstream,
      maxFreeSockets: this.limits.freePerUpstream,
      timeout: this.limits.idleMs,
      scheduling: "lifo", // the warmest connection first; the coldest ones time out
    });
    // Every connection goes through the fallback's own dialer (connect timeout, test hooks).
    (a as unknown as { createConnection: () => Socket }).createConnection = () => this.dial(host, port);
    this.agents.set(key, a);
    return a;
  }

  size(): number {
    return this.agents.size;
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

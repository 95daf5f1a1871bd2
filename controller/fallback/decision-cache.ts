// Route decisions reused across requests. route() depends only on the authority, the protocol,
// the caller's namespace and service account, and the RouteContext; the caller's address is
// verified per request before the cache is consulted, never cached. Three things end an entry:
// a new RouteContext object (the fallback command makes one per informer change, so a changed
// Service, ServiceEntry or AuthorizationPolicy is decided afresh), `ttlMs` (an answer that came
// from DNS is not trusted longer than that), and the size bound (the oldest entry goes first, so
// a caller cycling through distinct names only costs misses).
import type { Route, RouteContext, VerifiedCaller } from "./route.js";

// Refusals decided by the registry, policies or DNS (see `set`).
const CACHED_REFUSALS = new Set(["meshtune-endpoint", "not-exported", "policy", "refused-address", "dns"]);

export class DecisionCache {
  private readonly entries = new Map<string, { route: Route; until: number }>();
  private context: RouteContext | null = null;

  constructor(
    private readonly max = 10_000,
    private readonly ttlMs = 5_000,
    private readonly now: () => number = Date.now,
  ) {}

  private static key(authority: string, proto: string, caller: VerifiedCaller): string {
    return `${proto} ${caller.namespace} ${caller.serviceAccount} ${authority}`;
  }

  /** The cached decision, or undefined; any earlier context's decisions are forgotten. */
  get(c: RouteContext, authority: string, proto: string, caller: VerifiedCaller): Route | undefined {
    if (c !== this.context) {
      this.entries.clear();
      this.context = c;
      return undefined;
    }
    const k = DecisionCache.key(authority, proto, caller);
    const e = this.entries.get(k);
    if (!e) return undefined;
    if (e.until > this.now()) return e.route;
    this.entries.delete(k);
    return undefined;
  }

  set(c: RouteContext, authority: string, proto: string, caller: VerifiedCaller, route: Route): void {
    if (c !== this.context) return; // decided under a context that has since changed
    // Only what the registry, policies and DNS decided is kept: a malformed or address Host is
    // cheap to refuse again and its caller chose it (it would only churn the cache).
    if (!route.ok && !CACHED_REFUSALS.has(route.reason)) return;
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as string);
    // A failed lookup is kept a second only: long enough that retries do not each hold one of
    // libuv's four resolver threads (a lookup that times out is not cancelled), short enough to
    // recover at once.
    const ttl = !route.ok && route.reason === "dns" ? Math.min(this.ttlMs, 1000) : this.ttlMs;
    this.entries.set(DecisionCache.key(authority, proto, caller), { route, until: this.now() + ttl });
  }

  size(): number {
    return this.entries.size;
  }
}

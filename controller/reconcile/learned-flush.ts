// Learned state between the graph and its ConfigMaps: a workload's hosts with first/last seen,
// merged into the store at each reconcile, and saved in batches (one write per dirty namespace)
// on their own schedule, with backoff, so a failed Sidecar write never holds learned state back.
import type { Counter } from "prom-client";
import type { Graph, Stats } from "../model/graph.js";
import type { LearnedStore } from "../k8s/learned-store.js";
import { hostsOfEdge, hostsOfUnknown, type ScopeContext } from "../sidecar/scope.js";
import type { HostSeen } from "./decide.js";
import type { Logger } from "../log.js";

/** ns/name's hosts as the graph shows them now, merged into (and then read back from) the store. */
export function learnedHosts(
  graph: Graph,
  store: LearnedStore,
  ns: string,
  name: string,
  scope: ScopeContext,
): { since: number | null; hosts: Map<string, HostSeen> } {
  const hosts = new Map<string, HostSeen>();
  let since: number | null = null;
  const n = graph.nodes.get(`${ns}/${name}`);
  const seen: [Stats, string[]][] = [];
  for (const e of n?.edges.values() ?? []) seen.push([e, hostsOfEdge(e, ns, scope)]);
  for (const u of n?.unknown.values() ?? []) seen.push([u, hostsOfUnknown(u, ns, scope)]);
  for (const [e, hs] of seen) {
    since = since === null ? e.firstSeenMs : Math.min(since, e.firstSeenMs);
    for (const h of hs) {
      const c = hosts.get(h);
      hosts.set(
        h,
        c
          ? { firstSeenMs: Math.min(c.firstSeenMs, e.firstSeenMs), lastSeenMs: Math.max(c.lastSeenMs, e.lastSeenMs) }
          : { firstSeenMs: e.firstSeenMs, lastSeenMs: e.lastSeenMs },
      );
    }
  }
  if (since !== null) store.merge(ns, name, since, hosts);
  const stored = store.get(ns, name);
  return { since: stored?.observedSinceMs ?? since, hosts: stored?.hosts ?? hosts };
}

/**
 * Persist learned state in batches, not once per reconcile. A failed save is retried with
 * backoff (1 s doubling to 30 s) until it succeeds, whether or not anything else happens. Bound
 * on loss: a SIGKILL loses at most what was learned in the last delay plus one save (the next
 * reports re-teach it); SIGTERM flushes first.
 */
export class LearnedFlusher {
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private failures = 0;
  private stopped = false;

  constructor(
    private readonly store: LearnedStore,
    private readonly delayMs: number,
    private readonly saveErrors: Counter,
    private readonly log: Logger,
  ) {}

  schedule(delayMs = this.delayMs): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.flush().then(
        () => {
          this.timer = null;
          this.failures = 0;
          if (this.store.hasDirty()) this.schedule(); // learned more while saving
        },
        (e) => {
          this.timer = null;
          const retryMs = Math.min(30_000, 1000 * 2 ** this.failures++);
          this.saveErrors.inc();
          this.log("warn", "could not save learned state; retrying", {
            error: (e as Error).message.split("\n")[0],
            retryInMs: retryMs,
            failures: this.failures,
          });
          this.schedule(retryMs);
        },
      );
    }, delayMs);
  }

  /** Save what is dirty now; one save at a time. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => {});
    this.flushing = this.store.saveDirty();
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
    }
  }

  /** No more scheduled saves; the caller flushes once more. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}

// Learned dependencies survive restarts and leader changes: one ConfigMap per namespace
// ("meshtune-learned"), one key per workload, bounded in hosts and bytes. A corrupt entry is
// reported and skipped, never fatal; what is in memory is never thrown away by a failed load.
import type { KubernetesObjectApi, V1ConfigMap } from "@kubernetes/client-node";
import type { HostSeen } from "../reconcile/decide.js";
import { isNotFound, statusCode } from "./kube.js";
import { MANAGED_BY } from "../sidecar/generate.js";
import type { Logger } from "../log.js";

export const STORE_NAME = "meshtune-learned";
export const MAX_HOSTS_PER_WORKLOAD = 1000;
export const MAX_BYTES = 900 * 1024; // ConfigMaps are capped at 1 MiB

export interface Learned {
  observedSinceMs: number;
  hosts: Map<string, HostSeen>;
}

export function encode(l: Learned): string {
  const hosts = [...l.hosts].sort((a, b) => b[1].lastSeenMs - a[1].lastSeenMs).slice(0, MAX_HOSTS_PER_WORKLOAD);
  return JSON.stringify({
    v: 1,
    since: l.observedSinceMs,
    hosts: Object.fromEntries(hosts.map(([h, s]) => [h, [s.firstSeenMs, s.lastSeenMs]])),
  });
}

export function decode(s: string): Learned {
  const o = JSON.parse(s) as { v?: number; since?: unknown; hosts?: Record<string, unknown> };
  if (o?.v !== 1 || typeof o.since !== "number" || !o.hosts || typeof o.hosts !== "object")
    throw new Error("not a v1 learned-state entry");
  const hosts = new Map<string, HostSeen>();
  for (const [h, v] of Object.entries(o.hosts)) {
    if (!Array.isArray(v) || v.length !== 2 || !v.every((n) => typeof n === "number"))
      throw new Error(`bad timestamps for ${h}`);
    hosts.set(h, { firstSeenMs: v[0], lastSeenMs: v[1] });
  }
  return { observedSinceMs: o.since, hosts };
}

export class LearnedStore {
  private readonly state = new Map<string, Map<string, Learned>>(); // ns → workload → learned
  private readonly dirty = new Set<string>();
  constructor(
    private readonly api: KubernetesObjectApi,
    private readonly log: Logger = () => {},
  ) {}

  get(ns: string, name: string): Learned | undefined {
    return this.state.get(ns)?.get(name);
  }
  hasDirty(): boolean {
    return this.dirty.size > 0;
  }

  /** Fold new observations in; marks the namespace for saving when anything changed. */
  merge(ns: string, name: string, observedSinceMs: number, hosts: Map<string, HostSeen>): void {
    let m = this.state.get(ns);
    if (!m) this.state.set(ns, (m = new Map()));
    let cur = m.get(name);
    if (!cur) m.set(name, (cur = { observedSinceMs, hosts: new Map() }));
    let changed = false;
    if (observedSinceMs < cur.observedSinceMs) {
      cur.observedSinceMs = observedSinceMs;
      changed = true;
    }
    for (const [h, s] of hosts) {
      const c = cur.hosts.get(h);
      if (!c) {
        cur.hosts.set(h, { ...s });
        changed = true;
        continue;
      }
      if (s.firstSeenMs < c.firstSeenMs) {
        c.firstSeenMs = s.firstSeenMs;
        changed = true;
      }
      if (s.lastSeenMs > c.lastSeenMs) {
        c.lastSeenMs = s.lastSeenMs;
        changed = true;
      }
    }
    if (changed) this.dirty.add(ns);
  }

  async load(ns: string): Promise<number> {
    let cm: V1ConfigMap;
    try {
      cm = await this.api.read<V1ConfigMap>({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: STORE_NAME, namespace: ns },
      });
    } catch (e) {
      if (isNotFound(e)) return 0;
      throw e;
    }
    const before = this.dirty.has(ns);
    const n = this.mergeStored(ns, cm);
    if (!before) this.dirty.delete(ns); // loading is not a change
    return n;
  }

  /**
   * Write each dirty namespace's ConfigMap as read-merge-replace under the read's
   * resourceVersion (optimistic concurrency): what another writer saved since (a new leader,
   * while this replica was partitioned) is merged in first, and a write that races it gets 409
   * and is redone on the fresh object. So no writer, deposed or not, can drop newer state.
   */
  async saveDirty(): Promise<void> {
    for (const ns of [...this.dirty]) {
      // Clean before the write: what is merged while it is in flight marks the namespace again.
      this.dirty.delete(ns);
      try {
        await this.saveNamespace(ns);
      } catch (e) {
        this.dirty.add(ns);
        throw e;
      }
    }
  }

  private async saveNamespace(ns: string, attempts = 4): Promise<void> {
    const ref = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: STORE_NAME, namespace: ns } };
    for (let i = 1; ; i++) {
      let cur: V1ConfigMap | null = null;
      try {
        cur = await this.api.read<V1ConfigMap>(ref);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      if (cur) this.mergeStored(ns, cur);
      const data = this.encodeNamespace(ns);
      try {
        if (cur)
          await this.api.replace<V1ConfigMap>({
            ...ref,
            metadata: { ...ref.metadata, labels: { ...MANAGED_BY }, resourceVersion: cur.metadata?.resourceVersion },
            data,
          });
        else
          await this.api.create<V1ConfigMap>({
            ...ref,
            metadata: { ...ref.metadata, labels: { ...MANAGED_BY } },
            data,
          });
        return;
      } catch (e) {
        // 409: someone wrote (or created) it since our read; read again, merge, retry.
        if (statusCode(e) !== 409 || i >= attempts) throw e;
      }
    }
  }

  /** Fold a stored ConfigMap's entries in (corrupt ones are reported and skipped). */
  private mergeStored(ns: string, cm: V1ConfigMap): number {
    let n = 0;
    for (const [name, raw] of Object.entries(cm.data ?? {})) {
      try {
        const l = decode(raw);
        this.merge(ns, name, l.observedSinceMs, l.hosts);
        n++;
      } catch (e) {
        this.log("warn", "skipping corrupt learned-state entry", {
          namespace: ns,
          workload: name,
          error: (e as Error).message,
        });
      }
    }
    return n;
  }

  /** The namespace's entries, newest workloads first, up to the size cap (what is dropped stays in memory). */
  private encodeNamespace(ns: string): Record<string, string> {
    const data: Record<string, string> = {};
    let bytes = 0;
    const entries = [...(this.state.get(ns) ?? new Map<string, Learned>())].sort(
      (a, b) => b[1].observedSinceMs - a[1].observedSinceMs,
    );
    for (const [name, l] of entries) {
      const s = encode(l);
      if (bytes + s.length > MAX_BYTES) {
        this.log("warn", "learned-state ConfigMap full; entry kept in memory only", { namespace: ns, workload: name });
        continue;
      }
      data[name] = s;
      bytes += s.length;
    }
    return data;
  }
}

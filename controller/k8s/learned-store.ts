// Learned dependencies survive restarts and leader changes: one ConfigMap per namespace
// ("meshtune-learned"), one key per workload, bounded in hosts and bytes. A corrupt entry is
// reported and skipped, never fatal; what is in memory is never thrown away by a failed load.
import type { KubernetesObjectApi, V1ConfigMap } from "@kubernetes/client-node";
import type { HostSeen } from "../reconcile/decide.js";
import { apply, isNotFound } from "./kube.js";
import { MANAGED_BY } from "../sidecar/generate.js";

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
    private readonly log: (msg: string, f?: object) => void = () => {},
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
    let n = 0;
    for (const [name, raw] of Object.entries(cm.data ?? {})) {
      try {
        const l = decode(raw);
        const before = this.dirty.has(ns);
        this.merge(ns, name, l.observedSinceMs, l.hosts);
        if (!before) this.dirty.delete(ns); // loading is not a change
        n++;
      } catch (e) {
        this.log("skipping corrupt learned-state entry", {
          namespace: ns,
          workload: name,
          error: (e as Error).message,
        });
      }
    }
    return n;
  }

  async saveDirty(): Promise<void> {
    for (const ns of [...this.dirty]) {
      const data: Record<string, string> = {};
      let bytes = 0;
      // Newest workloads first; stop at the size cap (what is dropped stays in memory).
      const entries = [...(this.state.get(ns) ?? new Map<string, Learned>())].sort(
        (a, b) => b[1].observedSinceMs - a[1].observedSinceMs,
      );
      for (const [name, l] of entries) {
        const s = encode(l);
        if (bytes + s.length > MAX_BYTES) {
          this.log("learned-state ConfigMap full; entry kept in memory only", { namespace: ns, workload: name });
          continue;
        }
        data[name] = s;
        bytes += s.length;
      }
      // Clean before the write: what is merged while it is in flight marks the namespace again.
      this.dirty.delete(ns);
      try {
        await apply(this.api, {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: STORE_NAME, namespace: ns, labels: { ...MANAGED_BY } },
          data,
        });
      } catch (e) {
        this.dirty.add(ns);
        throw e;
      }
    }
  }
}

// Leader election on a coordination.k8s.io/v1 Lease, client-go style: acquire when free or
// expired, renew before it expires, optimistic concurrency (resourceVersion) decides races.
import type { KubernetesObjectApi, V1Lease } from "@kubernetes/client-node";
import { isNotFound } from "./kube.js";

export interface LeaderOptions { namespace: string; name: string; identity: string; leaseDurationMs: number; now?: () => number }

const micro = (ms: number) => new Date(ms).toISOString().replace("Z", "000Z");

export class LeaderElector {
  leader = false;
  transitions = 0;
  constructor(private readonly api: KubernetesObjectApi, private readonly o: LeaderOptions) {}
  private now() { return this.o.now?.() ?? Date.now(); }

  /** One acquire-or-renew round; returns whether we hold the lease afterwards. */
  async tick(): Promise<boolean> {
    const ref = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: this.o.name, namespace: this.o.namespace } };
    const now = this.now();
    let lease: V1Lease | null = null;
    try { lease = await this.api.read<V1Lease>(ref); } catch (e) { if (!isNotFound(e)) return this.lost(); }
    const spec = {
      holderIdentity: this.o.identity, leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      renewTime: micro(now) as unknown as Date, acquireTime: micro(now) as unknown as Date, leaseTransitions: 0,
    };
    try {
      if (!lease) {
        await this.api.create<V1Lease>({ ...ref, spec });
        return this.won();
      }
      const s = lease.spec ?? {};
      const holder = s.holderIdentity;
      const renewed = s.renewTime ? new Date(s.renewTime as unknown as string).getTime() : 0;
      const expired = renewed + (s.leaseDurationSeconds ?? 0) * 1000 < now;
      if (holder && holder !== this.o.identity && !expired) return this.lost();
      const next = { ...spec, acquireTime: holder === this.o.identity ? s.acquireTime : spec.acquireTime, leaseTransitions: (s.leaseTransitions ?? 0) + (holder === this.o.identity ? 0 : 1) };
      await this.api.replace<V1Lease>({ ...ref, metadata: { ...ref.metadata, resourceVersion: lease.metadata?.resourceVersion }, spec: next });
      return this.won();
    } catch {
      // 409: another candidate moved first. Anything else: we cannot prove we hold it.
      return this.lost();
    }
  }

  private won() { if (!this.leader) this.transitions++; this.leader = true; return true; }
  private lost() { this.leader = false; return false; }

  /** Give the lease up (shutdown): the next candidate need not wait for expiry. */
  async release(): Promise<void> {
    if (!this.leader) return;
    const ref = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: this.o.name, namespace: this.o.namespace } };
    try {
      const lease = await this.api.read<V1Lease>(ref);
      await this.api.replace<V1Lease>({ ...ref, metadata: { ...ref.metadata, resourceVersion: lease.metadata?.resourceVersion }, spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1 } });
    } catch { /* best effort */ }
    this.leader = false;
  }
}

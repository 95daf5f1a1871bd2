// Leader election on a coordination.k8s.io/v1 Lease, client-go style (k8s.io/client-go
// tools/leaderelection): acquire when free or expired, renew every retry period, optimistic
// concurrency (resourceVersion) decides races, and a leader whose renewals fail keeps leading
// until its renew deadline has passed since the last successful renewal (transient API errors
// and conflicts do not depose it). The leader also publishes where its collector listens
// (annotation meshtune.io/collector-url), so standbys can forward reports to it.
import type { KubernetesObjectApi, V1Lease } from "@kubernetes/client-node";
import { isNotFound } from "./kube.js";

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs?: number;
  collectorUrl?: string;
  now?: () => number;
}

export const COLLECTOR_URL = "meshtune.io/collector-url";

const micro = (ms: number) => new Date(ms).toISOString().replace("Z", "000Z");

export class LeaderElector {
  leader = false;
  transitions = 0;
  /** The current holder's collector URL (from the Lease), for forwarding; null when unknown or expired. */
  leaderUrl: string | null = null;
  private lastRenewMs = 0;
  constructor(
    private readonly api: KubernetesObjectApi,
    private readonly o: LeaderOptions,
  ) {}
  private now() {
    return this.o.now?.() ?? Date.now();
  }
  /** client-go's RenewDeadline; default two thirds of the lease duration. */
  private get renewDeadlineMs(): number {
    return this.o.renewDeadlineMs ?? Math.round((this.o.leaseDurationMs * 2) / 3);
  }

  /**
   * One acquire-or-renew round; returns whether we hold the lease afterwards. The round is
   * bounded by the renew deadline, as client-go's renew() runs tryAcquireOrRenew under
   * context.WithTimeout(ctx, RenewDeadline) (client-go tools/leaderelection/leaderelection.go):
   * a hung API call counts as a failed renewal, never as holding the lease.
   */
  async tick(): Promise<boolean> {
    const deadline = this.renewDeadlineMs;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((r) => {
      timer = setTimeout(() => r("timeout"), deadline);
    });
    const gen = ++this.gen;
    const round = this.round(gen);
    try {
      const r = await Promise.race([round, timedOut]);
      if (r !== "timeout") return r;
      this.gen++; // the late answer of this round must not change our state
      return this.failed(this.now());
    } finally {
      clearTimeout(timer);
    }
  }

  private gen = 0;
  private async round(gen: number): Promise<boolean> {
    const ref = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: this.o.name, namespace: this.o.namespace },
    };
    const now = this.now();
    let lease: V1Lease | null = null;
    try {
      lease = await this.api.read<V1Lease>(ref);
    } catch (e) {
      if (!isNotFound(e)) return this.failed(now);
    }
    const spec = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      renewTime: micro(now) as unknown as Date,
      acquireTime: micro(now) as unknown as Date,
      leaseTransitions: 0,
    };
    try {
      if (!lease) {
        await this.api.create<V1Lease>({
          ...ref,
          metadata: { ...ref.metadata, annotations: this.annotations() },
          spec,
        });
        return gen === this.gen ? this.won(now) : this.leader;
      }
      const s = lease.spec ?? {};
      const holder = s.holderIdentity;
      const renewed = s.renewTime ? new Date(s.renewTime as unknown as string).getTime() : 0;
      const expired = renewed + (s.leaseDurationSeconds ?? 0) * 1000 < now;
      if (holder && holder !== this.o.identity && !expired) {
        if (gen !== this.gen) return this.leader;
        this.leaderUrl = lease.metadata?.annotations?.[COLLECTOR_URL] ?? null;
        return this.lost();
      }
      const next = {
        ...spec,
        acquireTime: holder === this.o.identity ? s.acquireTime : spec.acquireTime,
        leaseTransitions: (s.leaseTransitions ?? 0) + (holder === this.o.identity ? 0 : 1),
      };
      await this.api.replace<V1Lease>({
        ...ref,
        metadata: {
          ...ref.metadata,
          annotations: this.annotations(),
          resourceVersion: lease.metadata?.resourceVersion,
        },
        spec: next,
      });
      return gen === this.gen ? this.won(now) : this.leader;
    } catch {
      // 409: another candidate moved first, or our read was stale; anything else: transient.
      // Either way only the renew deadline decides that we lost it.
      return this.failed(now);
    }
  }

  private annotations() {
    return this.o.collectorUrl ? { [COLLECTOR_URL]: this.o.collectorUrl } : undefined;
  }
  private won(now: number) {
    if (!this.leader) this.transitions++;
    this.leader = true;
    this.lastRenewMs = now;
    this.leaderUrl = this.o.collectorUrl ?? null;
    return true;
  }
  private lost() {
    this.leader = false;
    return false;
  }
  private failed(now: number) {
    if (this.leader && now - this.lastRenewMs < this.renewDeadlineMs) return true;
    // Whoever leads now, it is not known to be us: never keep our own URL as the leader's.
    if (this.leaderUrl === (this.o.collectorUrl ?? null)) this.leaderUrl = null;
    return this.lost();
  }

  /**
   * Whether this replica is leader and certain of it: its last renewal is younger than half the
   * renew deadline. A partitioned leader keeps the lease until the deadline (client-go), but
   * stops answering for durable state well before another replica can take over.
   */
  sure(now = this.now()): boolean {
    return this.leader && now - this.lastRenewMs < this.renewDeadlineMs / 2;
  }

  /** Give the lease up (shutdown): the next candidate need not wait for expiry. */
  async release(): Promise<void> {
    if (!this.leader) return;
    const ref = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: this.o.name, namespace: this.o.namespace },
    };
    try {
      const lease = await this.api.read<V1Lease>(ref);
      await this.api.replace<V1Lease>({
        ...ref,
        metadata: { ...ref.metadata, resourceVersion: lease.metadata?.resourceVersion },
        spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1 },
      });
    } catch {
      /* best effort */
    }
    this.leader = false;
  }
}

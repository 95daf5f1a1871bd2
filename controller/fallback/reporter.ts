// The fallback's fast path: what it forwarded is reported to the collector within `delayMs`
// (coalesced per caller, host, port and protocol), so the caller's Sidecar gains the host at the
// next reconcile — seconds, not a filter flush interval. Bounded in total (`maxPending`) and per
// caller pod (`maxPendingPerCaller`), so one caller's flood of distinct hosts fills only its own
// share and never evicts or crowds out another caller's entries; excess is dropped and counted. A failed POST keeps its entries (bounded) and is
// retried with backoff; a refusal (4xx) drops them, counted: resending would not change it.
import type { Counter, Registry } from "prom-client";
import { fallbackReporterMetrics } from "../metrics.js";
import type { Logger } from "../log.js";
import type { Learned } from "./server.js";
import type { FallbackReport } from "../collector/fallback-report.js";
import { postReport } from "../collector/post-report.js";

export interface ReporterOptions {
  url: string;
  /** Extra request headers (a bearer token off the mesh). */
  headers?: () => Record<string, string>;
  /** Fresh headers after a 401 (a rotated token file), or null. */
  reauth?: () => Record<string, string> | null;
  delayMs?: number;
  maxPending?: number;
  maxPendingPerCaller?: number;
  timeoutMs?: number;
}

type Entry = FallbackReport["edges"][number];
const callerKey = (e: Pick<Entry, "caller">) => `${e.caller.namespace}/${e.caller.serviceAccount}/${e.caller.podIp}`;
// Joined with NUL, which none of these holds (Kubernetes names, an address, a vetted host): no
// JSON.stringify on the request path.
const keyOf = (e: Pick<Entry, "caller" | "host" | "port" | "proto">) =>
  `${e.caller.namespace}\0${e.caller.serviceAccount}\0${e.caller.podIp}\0${e.host}\0${e.port}\0${e.proto}`;

export class LearnReporter {
  private pending = new Map<string, Entry>();
  private perCaller = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private sending = false;
  private backoffMs = 0;
  readonly sent: Counter<"outcome">;
  readonly dropped: Counter<"reason">;

  constructor(
    private readonly o: ReporterOptions,
    registry: Registry,
    private readonly log: Logger = () => {},
  ) {
    ({ sent: this.sent, dropped: this.dropped } = fallbackReporterMetrics(registry));
  }

  add(l: Learned): void {
    const k = keyOf(l);
    const cur = this.pending.get(k);
    if (cur) cur.count++;
    else if (!this.admit({ caller: { ...l.caller }, host: l.host, port: l.port, proto: l.proto, count: 1 })) return;
    this.schedule(this.o.delayMs ?? 200);
  }

  /** Take a new entry if the total and its caller's share allow; counted when not. */
  private admit(e: Entry): boolean {
    const who = callerKey(e);
    const mine = this.perCaller.get(who) ?? 0;
    if (mine >= (this.o.maxPendingPerCaller ?? 100)) {
      this.dropped.inc({ reason: "caller-share" });
      return false;
    }
    if (this.pending.size >= (this.o.maxPending ?? 1000)) {
      this.dropped.inc({ reason: "pending-full" });
      return false;
    }
    this.pending.set(keyOf(e), e);
    this.perCaller.set(who, mine + 1);
    return true;
  }

  private schedule(ms: number): void {
    if (this.timer || this.sending) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, ms);
  }

  async flush(): Promise<void> {
    if (this.sending || this.pending.size === 0) return;
    this.sending = true;
    const batch = [...this.pending.values()];
    this.pending.clear();
    this.perCaller.clear();
    const body: FallbackReport = { v: 2, kind: "fallback", edges: batch };
    const p = await postReport(this.o.url, body, this.o.headers?.(), this.o.timeoutMs, this.o.reauth);
    const retry = p.outcome === "retry";
    if (p.outcome === "accepted") {
      this.sent.inc({ outcome: "accepted" });
      this.backoffMs = 0;
    } else if (p.outcome === "refused") {
      this.sent.inc({ outcome: "refused" });
      this.dropped.inc({ reason: "refused" }, batch.length);
      this.log("warn", "collector refused a fallback report", { detail: p.detail });
    } else this.log("warn", "collector did not take the fallback report; will retry", { detail: p.detail });
    if (retry) {
      this.sent.inc({ outcome: "failed" });
      for (const e of batch) {
        const k = keyOf(e);
        const cur = this.pending.get(k);
        if (cur) cur.count += e.count;
        else this.admit(e);
      }
      this.backoffMs = Math.min(30_000, Math.max(500, this.backoffMs * 2));
    }
    this.sending = false;
    if (this.pending.size) this.schedule(retry ? this.backoffMs : (this.o.delayMs ?? 200));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

// The datapath closes its splice gate itself, in the kernel, the first time another program holds
// the psock of a socket it would splice (EBUSY; bpf/meshtune.h mt_gate). A program attached after
// load above meshtune's attach point runs after meshtune's sock_ops and is the one refused, so the
// agent also repeats the load-time query for programs of others (`recheck`), which closes the gate
// when one appeared. This follows the gate from user space so the node says so where operators
// look: the splice feature (node label meshtune.io/sockmap-splice, the status ConfigMap,
// meshtune_node_feature_enabled) turns off with the reason, and on again when
// `meshtune bpf splice-gate open` reopens it.
import type { Reply } from "./datapath.js";
import type { Verdict } from "../node/features.js";

export interface GateState {
  open: boolean;
  reason?: string;
}

export class SpliceGateWatch {
  private last: boolean | null = null;
  private lastForeign: string | null = null;

  /**
   * `onChange` gets the splice verdict whenever the gate opens or closes (not on the first look
   * when it is open: the published features already say so); `onForeign` each newly found
   * program of others, once per description.
   */
  constructor(
    private readonly send: (line: string) => Promise<Reply>,
    private readonly onChange: (v: Verdict) => void,
    private readonly onForeign: (what: string) => void = () => {},
  ) {}

  /** One look; a loader error leaves the last known state (the next look retries). */
  async check(): Promise<void> {
    const r = await this.send("gate");
    if (r.ok) this.seen(r.gate as GateState | null);
  }

  /** The load-time query for programs of others, again; found, the loader closes the gate. */
  async recheck(): Promise<void> {
    const r = await this.send("recheck");
    if (!r.ok) return;
    const found = typeof r.foreign === "string" ? r.foreign : null;
    if (found && found !== this.lastForeign) this.onForeign(found);
    this.lastForeign = found;
    if (found) this.seen(r.gate as GateState | null);
  }

  private seen(g: GateState | null): void {
    if (!g || typeof g.open !== "boolean" || g.open === this.last) return;
    const first = this.last === null;
    this.last = g.open;
    if (first && g.open) return;
    this.onChange(
      g.open ? { ok: true } : { ok: false, reason: `splice gate closed: ${g.reason ?? "no reason given"}` },
    );
  }
}

// The datapath closes its splice gate itself, in the kernel, the first time another program holds
// the psock of a socket it would splice (EBUSY; bpf/meshtune.h mt_gate). This follows the gate
// from user space so the node says so where operators look: the splice feature (node label
// meshtune.io/sockmap-splice, the status ConfigMap, meshtune_node_feature_enabled) turns off with
// the kernel's reason, and on again when `meshtune bpf splice-gate open` reopens it.
import type { Reply } from "./datapath.js";
import type { Verdict } from "../node/features.js";

export interface GateState {
  open: boolean;
  reason?: string;
}

export class SpliceGateWatch {
  private last: boolean | null = null;

  /**
   * `onChange` gets the splice verdict whenever the gate opens or closes (not on the first look
   * when it is open: the published features already say so).
   */
  constructor(
    private readonly send: (line: string) => Promise<Reply>,
    private readonly onChange: (v: Verdict) => void,
  ) {}

  /** One look; a loader error leaves the last known state (the next look retries). */
  async check(): Promise<void> {
    const r = await this.send("gate");
    if (!r.ok) return;
    const g = r.gate as GateState | null;
    if (!g || typeof g.open !== "boolean" || g.open === this.last) return;
    const first = this.last === null;
    this.last = g.open;
    if (first && g.open) return;
    this.onChange(
      g.open ? { ok: true } : { ok: false, reason: `splice gate closed: ${g.reason ?? "no reason given"}` },
    );
  }
}

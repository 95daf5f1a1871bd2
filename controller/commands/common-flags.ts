// Flags several commands share, in a module of their own: importing them must not load a
// command's dependencies (controller.ts pulls in the Kubernetes client, ~40 MB of heap, which
// `recommend` would then pay through diagnose).
import { UserError } from "../errors.js";

/** A duration flag like 30s, 15m, 2h or 7d, in milliseconds; a usage error otherwise. */
export function duration(flag: string, v: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(v);
  if (!m) throw new UserError(`${flag} ${v}: expected a duration like 30s, 15m, 2h or 7d`, 2);
  return Number(m[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "ms"];
}

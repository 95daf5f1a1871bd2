// Durations as Istio accepts them: whole milliseconds, at least 1 ms (Istio validation
// agent.ValidateDuration: "only durations to ms precision are supported"), written in seconds
// ("0.8s", "2.64s"), which both protobuf JSON Duration and the CRD's CEL duration() parse.
export function dur(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  return `${Number((whole / 1000).toFixed(3))}s`;
}

/** Round up to two significant digits (1234 ms → 1300 ms): reviewable values, never below `ms`. */
export function niceCeil(ms: number): number {
  if (ms <= 0) return 0;
  const p = Math.pow(10, Math.max(0, Math.floor(Math.log10(ms)) - 1));
  return Math.ceil(ms / p) * p;
}

export function parseDur(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (!m) return NaN;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms"];
}

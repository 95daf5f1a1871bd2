// One access-log entry, normalised from any supported encoding.
export interface AccessRecord {
  startMs: number; // NaN when absent
  method: string; // "" for TCP
  protocol: string; // "HTTP/1.1", "HTTP/2", "" for TCP
  code: number; // 0 for TCP
  flags: string; // Envoy response flags, "-" when none
  durationMs: number;
  authority: string; // "" when absent
  upstreamHost: string; // ip:port, "" when absent
  cluster: string; // Istio cluster name, "" when absent
  downstreamLocal: string;
  sni: string; // requested server name, "" when absent
  route: string; // route name ("block_all": Istio's REGISTRY_ONLY refusal), "" when absent
}

/** Envoy prints "-" for empty values; normalise to "". */
export function dash(v: string | undefined | null): string {
  return v === undefined || v === null || v === "-" ? "" : v;
}

export function num(v: string | number | undefined | null): number {
  if (typeof v === "number") return v;
  if (v === undefined || v === null || v === "" || v === "-") return 0;
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

// Istio's JSON access-log encoding (meshConfig.accessLogEncoding JSON). Values may be
// strings or numbers, and absent values are null or "-".
import { type AccessRecord, dash, num } from "./record.js";

type J = Record<string, unknown>;

function str(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return dash(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return "";
}

/** Parse one JSON line; null when it is JSON but not an access-log entry; throws on bad JSON. */
export function parseJson(line: string): AccessRecord | null {
  const o = JSON.parse(line) as unknown;
  if (!o || typeof o !== "object" || Array.isArray(o)) return null;
  const j = o as J;
  // An entry has at least an upstream cluster or a start time plus a response code field.
  if (!("upstream_cluster" in j) && !("response_code" in j)) return null;
  const start = str(j.start_time);
  const code = num(j.response_code as string | number | null);
  return {
    startMs: start ? Date.parse(start) : NaN,
    method: str(j.method),
    protocol: str(j.protocol),
    code: Number.isFinite(code) ? code : 0,
    flags: str(j.response_flags) || "-",
    durationMs: num(j.duration as string | number | null),
    authority: str(j.authority),
    upstreamHost: str(j.upstream_host),
    cluster: str(j.upstream_cluster),
    downstreamLocal: str(j.downstream_local_address),
    sni: str(j.requested_server_name),
    route: str(j.route_name),
  };
}

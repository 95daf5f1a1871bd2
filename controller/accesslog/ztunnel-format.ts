// ztunnel's connection log (Istio ambient, Rust ztunnel), one line per connection and direction,
// as `kubectl logs` of a ztunnel pod shows it (istio.io docs, ambient/usage/troubleshoot-ztunnel,
// "Verifying ztunnel traffic through logs"):
//   <time>  info  access  connection complete  src.addr=10.244.0.10:59056 src.workload=sleep-…
//   src.namespace=demo src.identity="spiffe://…" dst.addr=10.244.0.9:15008
//   dst.hbone_addr=10.244.0.9:8080 dst.service=httpbin.demo.svc.cluster.local
//   dst.workload=httpbin-… dst.namespace=demo direction="outbound" bytes_sent=… duration="1ms"
// src.workload / dst.workload are pod names. Values may be quoted; unknown keys are ignored.
export interface ZtunnelRecord {
  complete: boolean;
  srcPod: string;
  srcNamespace: string;
  dstPod: string;
  dstNamespace: string;
  dstService: string;
  /** The application port: hbone_addr's when tunnelled, else addr's. */
  dstPort: number;
  direction: "inbound" | "outbound" | "";
  durationMs: number;
}

const HEAD = /^\S+\s+\w+\s+access\s+connection (opened|complete)\s/;
const KV = /([a-z_.]+)=("(?:[^"\\]|\\.)*"|\S+)/g;

/** Its lines start with the timestamp's digit; Envoy's start with "[" (TEXT) or "{" (JSON): the
 * regex runs only where it can match (it was 7 % of the learner's time on every line). */
export const isZtunnelLine = (line: string) => {
  const c = line.charCodeAt(0);
  return c >= 48 && c <= 57 && HEAD.test(line);
};

/** null when the line is not ztunnel's connection log. */
export function parseZtunnel(line: string): ZtunnelRecord | null {
  const h = HEAD.exec(line);
  if (!h) return null;
  const f = new Map<string, string>();
  for (const m of line.slice(h[0].length).matchAll(KV)) f.set(m[1], m[2].replace(/^"|"$/g, ""));
  const port = (a: string | undefined) => Number(/:(\d+)$/.exec(a ?? "")?.[1] ?? 0);
  const dur = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s)$/.exec(f.get("duration") ?? "");
  const scale: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000 };
  const direction = f.get("direction");
  return {
    complete: h[1] === "complete",
    srcPod: f.get("src.workload") ?? "",
    srcNamespace: f.get("src.namespace") ?? "",
    dstPod: f.get("dst.workload") ?? "",
    dstNamespace: f.get("dst.namespace") ?? "",
    dstService: f.get("dst.service") ?? "",
    dstPort: port(f.get("dst.hbone_addr")) || port(f.get("dst.addr")),
    direction: direction === "inbound" || direction === "outbound" ? direction : "",
    durationMs: dur ? Number(dur[1]) * scale[dur[2]] : 0,
  };
}

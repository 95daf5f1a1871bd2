// Istio cluster names: "direction|port|subset|host", the SNI form
// "outbound_.9080_.v1_.reviews.default.svc.cluster.local", and Envoy's specials.
import { boundedMemo } from "./bounded-memo.js";
export type ClusterKind = "outbound" | "inbound" | "passthrough" | "blackhole" | "other";

export interface ClusterRef {
  kind: ClusterKind;
  port: number; // 0 when unknown
  subset: string;
  host: string; // "" for inbound/specials
  egressGateway: boolean; // outbound to an Istio egress gateway
}

const SPECIAL: Record<string, ClusterKind> = {
  PassthroughCluster: "passthrough",
  InboundPassthroughCluster: "inbound",
  InboundPassthroughClusterIpv4: "inbound",
  InboundPassthroughClusterIpv6: "inbound",
  BlackHoleCluster: "blackhole",
};

const OTHER: ClusterRef = { kind: "other", port: 0, subset: "", host: "", egressGateway: false };

const MEMO_MAX = 50_000;

// Cluster names repeat on nearly every line of a log.
export const parseCluster: (name: string) => ClusterRef = boundedMemo((n) => parseClusterUncached(n), MEMO_MAX);

function parseClusterUncached(name: string): ClusterRef {
  const special = SPECIAL[name];
  if (special) return { kind: special, port: 0, subset: "", host: "", egressGateway: false };
  let parts = name.split("|");
  if (parts.length !== 4) {
    // SNI form: outbound_.PORT_.SUBSET_.HOST
    const m = /^(outbound|inbound)_\.(\d+)_\.([^_]*)_\.(.+)$/.exec(name);
    if (!m) return OTHER;
    parts = [m[1], m[2], m[3], m[4]];
  }
  const [dir, port, subset, host] = parts;
  const p = Number(port);
  if ((dir !== "outbound" && dir !== "inbound") || !Number.isInteger(p) || p < 0 || p > 65535) return OTHER;
  return { kind: dir, port: p, subset, host, egressGateway: dir === "outbound" && isEgressGatewayHost(host) };
}

// Hosts repeat too (every line's cluster and SNI): memoised per cluster domain, bounded.
const nsMemo = new Map<string, string | null>();
let nsMemoDomain = "";

/** Namespace of a Kubernetes service host ("reviews.bookinfo.svc.cluster.local" → "bookinfo"), or null. */
export function hostNamespace(host: string, clusterDomain = "cluster.local"): string | null {
  if (clusterDomain !== nsMemoDomain) {
    nsMemo.clear();
    nsMemoDomain = clusterDomain;
  }
  const hit = nsMemo.get(host);
  if (hit !== undefined) return hit;
  const r = hostNamespaceUncached(host, clusterDomain);
  if (nsMemo.size >= MEMO_MAX) nsMemo.clear();
  nsMemo.set(host, r);
  return r;
}

function hostNamespaceUncached(host: string, clusterDomain: string): string | null {
  const suffix = ".svc." + clusterDomain;
  if (!host.endsWith(suffix)) return null;
  const labels = host.slice(0, -suffix.length).split(".");
  return labels.length === 2 && labels[0] && labels[1] ? labels[1] : null;
}

export function isEgressGatewayHost(host: string): boolean {
  return /^istio-egressgateway[^.]*\./.test(host);
}

/** "reviews:9080" → "reviews"; "[::1]:80" → "::1". */
export function stripPort(authority: string): string {
  if (authority.startsWith("[")) return authority.slice(1, authority.indexOf("]"));
  const i = authority.lastIndexOf(":");
  return i > 0 && /^\d+$/.test(authority.slice(i + 1)) ? authority.slice(0, i) : authority;
}

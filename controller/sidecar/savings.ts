// Savings estimate: how much outbound xDS a proxy receives with the default (mesh-wide)
// scope vs with its generated Sidecar. A model, not a measurement; see README "Savings model".
// Bytes are calibrated against Istio's own generator (the 1.31 line, via the Istio oracle):
// `make bench` (bench/xds-savings.ts) prints this model's error against the real bytes.
//  - clusters: one outbound cluster per visible service port (+ STATIC_CLUSTERS both ways)
//  - listeners: one per TCP service port per VIP, one 0.0.0.0:port per HTTP port (+ virtual in/out)
//  - routes: one route config per HTTP port; virtual hosts: one per HTTP service port
//  - endpoints: endpoints of every visible service port
import type { CatalogService } from "./catalog.js";
import type { SidecarObj } from "./generate.js";

export const STATIC_CLUSTERS = 6; // BlackHole, Passthrough, InboundPassthrough, prometheus_stats, agent, xds-grpc
export const STATIC_LISTENERS = 2; // virtualOutbound, virtualInbound

export interface XdsSize {
  clusters: number;
  listeners: number;
  routes: number;
  virtualHosts: number;
  endpoints: number;
  bytes: number;
}
export interface Savings {
  workload: string;
  before: XdsSize;
  after: XdsSize;
  savedPct: XdsSize;
}

/** Does a Sidecar egress host ("ns/host", "*\/host", "./host", "ns/*", "*\/*.example.com") select a service? */
export function hostMatches(entry: string, svc: CatalogService, sidecarNs: string): boolean {
  const i = entry.indexOf("/");
  const ns = i < 0 ? "*" : entry.slice(0, i);
  const host = i < 0 ? entry : entry.slice(i + 1);
  if (ns === "~") return false; // "~" selects nothing
  if (ns !== "*" && ns !== svc.namespace && !(ns === "." && svc.namespace === sidecarNs)) return false;
  if (host === "*") return true;
  if (host.startsWith("*.")) return svc.host.endsWith(host.slice(1));
  return host === svc.host;
}

function visible(svc: CatalogService, fromNs: string): boolean {
  if (svc.exportTo.length === 0 || svc.exportTo.includes("*")) return true;
  return svc.exportTo.includes(fromNs) || (svc.exportTo.includes(".") && svc.namespace === fromNs);
}

/**
 * Serialized CDS+EDS+RDS+LDS+ECDS bytes for these counts. Per-resource sizes measured with
 * Istio's generator: an outbound cluster ~1.1 KB (auto-mTLS transport socket matches) and its
 * load assignment ~90 B plus ~90 B per endpoint; a virtual host ~520 B; an HTTP port's
 * 0.0.0.0 listener ~4.2 KB (connection manager and its filters) and its route config ~300 B; a
 * TCP listener per VIP and port ~540 B; virtualInbound/virtualOutbound ~7 KB; meshtune's two
 * WasmPlugins in ECDS ~1.9 KB.
 */
export function xdsBytes(s: Omit<XdsSize, "bytes">): number {
  const outbound = Math.max(0, s.clusters - STATIC_CLUSTERS);
  const tcpListeners = Math.max(0, s.listeners - STATIC_LISTENERS - s.routes);
  const cds = 1000 + 1100 * outbound,
    eds = 90 * outbound + 90 * s.endpoints,
    rds = 300 * s.routes + 520 * s.virtualHosts,
    lds = 7100 + 4150 * s.routes + 540 * tcpListeners;
  return cds + eds + rds + lds + 1950;
}

export function xdsSize(services: CatalogService[]): XdsSize {
  const httpPorts = new Set<number>();
  const s: XdsSize = {
    clusters: STATIC_CLUSTERS,
    listeners: STATIC_LISTENERS,
    routes: 0,
    virtualHosts: 0,
    endpoints: 0,
    bytes: 0,
  };
  for (const svc of services)
    for (const p of svc.ports) {
      s.clusters++;
      s.endpoints += svc.endpoints;
      if (p.http) {
        httpPorts.add(p.port);
        s.virtualHosts++;
      } else s.listeners++;
    }
  s.listeners += httpPorts.size;
  s.routes = httpPorts.size;
  s.bytes = xdsBytes(s);
  return s;
}

const pct = (b: number, a: number) => (b === 0 ? 0 : Math.round((1000 * (b - a)) / b) / 10);

export function estimateSavings(sc: SidecarObj, catalog: CatalogService[]): Savings {
  const ns = sc.metadata.namespace;
  const all = catalog.filter((s) => visible(s, ns));
  const hosts = sc.spec.egress.flatMap((e) => e.hosts);
  const scoped = all.filter((s) => hosts.some((h) => hostMatches(h, s, ns)));
  const before = xdsSize(all),
    after = xdsSize(scoped);
  const savedPct = {} as XdsSize;
  for (const k of Object.keys(before) as (keyof XdsSize)[]) savedPct[k] = pct(before[k], after[k]);
  return { workload: `${ns}/${sc.metadata.name}`, before, after, savedPct };
}

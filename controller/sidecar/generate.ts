// Sidecar generation, per ARCHITECTURE.md "Sidecar generation rules". Pure: graph in,
// Sidecar objects plus report notes out, in a stable order.
import { type Edge, type Graph, type WorkloadNode, type UnknownDest } from "../model/graph.js";
import { hostNamespace, isEgressGatewayHost, parseCluster, stripPort } from "../model/cluster-name.js";
import { defaultLabels, isGatewayWorkload } from "../model/workload.js";
import { suggestServiceEntry, type ServiceEntryObj } from "./service-entry.js";

export const MANAGED_BY = { "app.kubernetes.io/managed-by": "meshtune" };
export const SIDECAR_API = "networking.istio.io/v1beta1";

export interface GenerateOptions {
  alwaysInclude: string[];          // default ["istio-system/*"]
  clusterDomain: string;            // default "cluster.local"
  namespace?: string;               // only this namespace
  workload?: string;                // only this ns/name
  /** In-cluster fallback for unlearned destinations (ARCHITECTURE.md); offline: none. */
  egressProxy?: { host: string; port: number };
  labels?: (n: WorkloadNode) => Record<string, string>;
}

export const DEFAULT_GENERATE: GenerateOptions = { alwaysInclude: ["istio-system/*"], clusterDomain: "cluster.local" };

export interface SidecarObj {
  apiVersion: string;
  kind: "Sidecar";
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    workloadSelector: { labels: Record<string, string> };
    egress: { hosts: string[] }[];
    outboundTrafficPolicy?: { mode: "ALLOW_ANY" | "REGISTRY_ONLY"; egressProxy?: { host: string; port: { number: number } } };
  };
}

export interface UnregisteredNote { workload: string; kind: UnknownDest["kind"]; dst: string; authority: string; sni: string; count: number; suggestion: ServiceEntryObj | null }

export interface GenerateResult {
  sidecars: SidecarObj[];
  gatewaysSkipped: string[];
  unregistered: UnregisteredNote[];
}

/** The Sidecar egress hosts one learned edge needs (none for inbound/specials). */
export function hostsOfEdge(e: Edge, clusterDomain: string): string[] {
  if (e.dir !== "outbound") return [];
  const c = parseCluster(e.cluster);
  if (c.kind !== "outbound" || !c.host) return [];
  const out = [scoped(c.host, clusterDomain)];
  // Through an egress gateway the proxy also needs the original (ServiceEntry) host.
  if (isEgressGatewayHost(c.host) && e.authority) out.push(scoped(stripPort(e.authority), clusterDomain));
  return out;
}

/** Egress hosts for one workload's learned outbound edges. */
export function egressHosts(n: WorkloadNode, opts: GenerateOptions): string[] {
  const hosts = new Set(opts.alwaysInclude);
  for (const e of n.edges.values()) for (const h of hostsOfEdge(e, opts.clusterDomain)) hosts.add(h);
  return [...hosts].sort();
}

function scoped(host: string, domain: string): string {
  return `${hostNamespace(host, domain) ?? "*"}/${host}`;
}

export function generateSidecars(graph: Graph, opts: GenerateOptions = DEFAULT_GENERATE): GenerateResult {
  const res: GenerateResult = { sidecars: [], gatewaysSkipped: [], unregistered: [] };
  const nodes = [...graph.nodes.values()]
    .filter((n) => (!opts.namespace || n.namespace === opts.namespace) && (!opts.workload || n.key === opts.workload))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const n of nodes) {
    for (const u of [...n.unknown.values()].sort((a, b) => b.count - a.count || (a.dst < b.dst ? -1 : 1)))
      res.unregistered.push({
        workload: n.key, kind: u.kind, dst: u.dst, authority: u.authority, sni: u.sni, count: u.count,
        suggestion: suggestServiceEntry(u, n.namespace),
      });
    if (isGatewayWorkload(n.name)) { res.gatewaysSkipped.push(n.key); continue; }
    // A workload that only serves still gets a Sidecar: it needs nothing beyond the defaults.
    res.sidecars.push(sidecarFor(n, opts));
  }
  return res;
}

export function sidecarFor(n: WorkloadNode, opts: GenerateOptions): SidecarObj {
  return buildSidecar(n.namespace, n.name, opts.labels?.(n) ?? n.labels ?? defaultLabels(n.name), egressHosts(n, opts), opts.egressProxy);
}

export function buildSidecar(namespace: string, name: string, selector: Record<string, string>, hosts: string[], egressProxy?: { host: string; port: number }): SidecarObj {
  const sc: SidecarObj = {
    apiVersion: SIDECAR_API,
    kind: "Sidecar",
    metadata: { name, namespace, labels: { ...MANAGED_BY } },
    spec: { workloadSelector: { labels: { ...selector } }, egress: [{ hosts }] },
  };
  if (egressProxy)
    sc.spec.outboundTrafficPolicy = { mode: "ALLOW_ANY", egressProxy: { host: egressProxy.host, port: { number: egressProxy.port } } };
  return sc;
}

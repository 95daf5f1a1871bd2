// Sidecar generation, per ARCHITECTURE.md "Sidecar generation rules". Pure: graph in,
// Sidecar objects plus report notes out, in a stable order.
import { type Graph, type WorkloadNode, type UnknownDest } from "../model/graph.js";
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

/** Egress hosts for one workload's learned outbound edges. */
export function egressHosts(n: WorkloadNode, opts: GenerateOptions): string[] {
  const hosts = new Set(opts.alwaysInclude);
  for (const e of n.edges.values()) {
    if (e.dir !== "outbound") continue;
    const c = parseCluster(e.cluster);
    if (c.kind !== "outbound" || !c.host) continue;
    hosts.add(scoped(c.host, opts.clusterDomain));
    // Through an egress gateway the proxy also needs the original (ServiceEntry) host.
    if (isEgressGatewayHost(c.host) && e.authority) hosts.add(scoped(stripPort(e.authority), opts.clusterDomain));
  }
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
  const labels = opts.labels?.(n) ?? n.labels ?? defaultLabels(n.name);
  const sc: SidecarObj = {
    apiVersion: SIDECAR_API,
    kind: "Sidecar",
    metadata: { name: n.name, namespace: n.namespace, labels: { ...MANAGED_BY } },
    spec: { workloadSelector: { labels: { ...labels } }, egress: [{ hosts: egressHosts(n, opts) }] },
  };
  if (opts.egressProxy)
    sc.spec.outboundTrafficPolicy = { mode: "ALLOW_ANY", egressProxy: { host: opts.egressProxy.host, port: { number: opts.egressProxy.port } } };
  return sc;
}

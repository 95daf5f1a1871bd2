// Which workloads stand behind each service host, for the graph's service → workload edges (the
// anchor is Kiali's versioned-app graph: a caller's edge ends at the service it named, and the
// service's edges go to the workloads that served it). Evidence, strongest first:
//  1. the workload's own inbound requests named the host (tune/traffic.ts servers);
//  2. the Service's spec.selector matches the workload's pod labels (a catalog with pods);
//  3. without labels, the workload whose name is the service's, or the service's plus a version
//     suffix (`mongodb` → `mongodb-v1`), in the service's namespace — Kubernetes' own
//     app/version naming (the report names pods placed by name as guesses already).
// Per server, the edge carries that workload's inbound traffic for the host: requests that named
// it, else (TCP, or a gateway's own Host) inbound traffic on the service's port.
import type { Graph, Stats, WorkloadNode } from "../model/graph.js";
import { emptyStats, mergeStats } from "../model/graph.js";
import { parseCluster } from "../model/cluster-name.js";
import { requestedFqdn, type HostIndex } from "../istio/hosts.js";
import type { CatalogService } from "../sidecar/catalog.js";

export interface ServerJoin {
  workload: string;
  how: "requests" | "selector" | "name";
  /** The workload's inbound traffic attributed to this host; null when none could be. */
  stats: Stats | null;
}

export function serversByHost(
  g: Graph,
  services: CatalogService[],
  requested: Map<string, Set<string>>,
  index: HostIndex,
  domain: string,
): (host: string, port: number) => ServerJoin[] {
  const byNs = new Map<string, WorkloadNode[]>();
  for (const n of g.nodes.values()) {
    const l = byNs.get(n.namespace) ?? [];
    l.push(n);
    byNs.set(n.namespace, l);
  }
  const svc = new Map(services.map((s) => [s.host, s]));
  return (host, port) => {
    const found = new Map<string, ServerJoin["how"]>();
    for (const w of requested.get(host) ?? []) found.set(w, "requests");
    const s = svc.get(host);
    const ns = s?.namespace ?? (host.endsWith(`.svc.${domain}`) ? host.split(".")[1] : null);
    if (ns && s?.selector && Object.keys(s.selector).length)
      for (const n of byNs.get(ns) ?? [])
        if (n.labels && Object.entries(s.selector!).every(([k, v]) => n.labels![k] === v) && !found.has(n.key))
          found.set(n.key, "selector");
    if (!found.size && ns && host.endsWith(`.svc.${domain}`)) {
      const name = host.split(".")[0];
      const versioned = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(-v\\d+)?$`);
      for (const n of byNs.get(ns) ?? []) if (!n.labels && versioned.test(n.name)) found.set(n.key, "name");
    }
    return [...found].map(([workload, how]) => ({
      workload,
      how,
      stats: inboundFor(g.nodes.get(workload)!, host, port, index, domain),
    }));
  };
}

function inboundFor(n: WorkloadNode, host: string, port: number, index: HostIndex, domain: string): Stats | null {
  let named: Stats | null = null,
    onPort: Stats | null = null;
  for (const e of n.edges.values()) {
    if (e.dir !== "inbound") continue;
    const h = e.authority ? requestedFqdn(e.authority, n.namespace, domain, index) : null;
    if (h === host) mergeStats((named ??= emptyStats(e.firstSeenMs)), e);
    else if (port && parseCluster(e.cluster).port === port) mergeStats((onPort ??= emptyStats(e.firstSeenMs)), e);
  }
  return named ?? onPort;
}

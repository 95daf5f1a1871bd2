// Discovery scope: what istiod need not send anywhere.
//  - meshConfig.discoverySelectors: namespaces matching no selector are not discovered by
//    istiod at all (Istio MeshConfig docs: discoverySelectors). Candidates: namespaces with no
//    meshed workload that no meshed workload calls. The selector uses the kubernetes.io/
//    metadata.name label the API server sets on every namespace (Kubernetes ≥ 1.21).
//  - exportTo on Services called only from their own namespace: Istio reads the
//    networking.istio.io/exportTo annotation as a comma list of ".", "*", "~" or namespace
//    names (pilot/pkg/serviceregistry/kube/conversion.go). meshtune-system and istio-system stay
//    in the list: the fallback (meshtune-system) must still reach a not-yet-learned caller's
//    destination, and gateways live in istio-system.
import type { CatalogService } from "../sidecar/catalog.js";
import type { Traffic } from "./traffic.js";

export interface DiscoveryRec {
  excludedNamespaces: string[];
  meshConfig: Record<string, unknown> | null;
  exportTo: { namespace: string; service: string; host: string; annotation: string; why: string }[];
  saving: { proxies: number; clustersPerProxy: number; endpointsPerProxy: number };
  notes: string[];
}

const ALWAYS = new Set(["istio-system", "meshtune-system", "kube-system"]);

export function recommendDiscovery(o: {
  services: CatalogService[];
  namespaces: string[];
  meshed: Set<string>;
  proxies: number;
  traffic: Traffic;
  domain: string;
  minRequests: number;
}): DiscoveryRec {
  const called = new Set<string>();
  for (const h of o.traffic.hosts.values()) {
    const s = o.services.find((x) => x.host === h.host);
    if (s) called.add(s.namespace);
  }
  const all = new Set([...o.namespaces, ...o.services.map((s) => s.namespace)]);
  const excluded = [...all].filter((ns) => !ALWAYS.has(ns) && !o.meshed.has(ns) && !called.has(ns)).sort();
  const notes: string[] = [];
  const dropped = o.services.filter((s) => excluded.includes(s.namespace));
  const exportTo: DiscoveryRec["exportTo"] = [];
  for (const s of o.services) {
    if (excluded.includes(s.namespace) || !s.host.endsWith(`.svc.${o.domain}`) || s.exportTo.length) continue;
    const t = o.traffic.hosts.get(s.host);
    if (!t || t.count < o.minRequests) continue; // never called, or too little seen: no claim about its callers
    if ([...t.callerNamespaces].every((ns) => ns === s.namespace)) {
      exportTo.push({
        namespace: s.namespace,
        service: s.host.split(".")[0],
        host: s.host,
        annotation: ".,istio-system,meshtune-system",
        why: `${t.count} requests from ${t.callers.size} caller(s), all in ${s.namespace}`,
      });
    }
  }
  const hidden = [...dropped, ...o.services.filter((s) => exportTo.some((e) => e.host === s.host))];
  const clusters = hidden.reduce((a, s) => a + s.ports.length, 0),
    endpoints = hidden.reduce((a, s) => a + s.ports.length * s.endpoints, 0);
  if (!excluded.length)
    notes.push("every namespace holds meshed workloads or is called by one: no discoverySelectors change");
  return {
    excludedNamespaces: excluded,
    meshConfig: excluded.length
      ? {
          discoverySelectors: [
            { matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "NotIn", values: excluded }] },
          ],
        }
      : null,
    exportTo,
    saving: { proxies: o.proxies, clustersPerProxy: clusters, endpointsPerProxy: endpoints },
    notes,
  };
}

// VirtualServices as a scoped sidecar sees them. Istio imports a VirtualService only when the
// Sidecar imports one of its hosts *under the VirtualService's own namespace* (or "*"):
// pilot/pkg/model/virtualservice.go SelectVirtualServices (hostsByNamespace[vs.Namespace], then
// the "*" entry). A learned host in namespace A routed by a VS in namespace B therefore needs
// "B/<vs host>" too, or the proxy silently loses the routing rule.

export interface VirtualServiceRef {
  namespace: string;
  name: string;
  hosts: string[];
  exportTo: string[];
  mesh: boolean;
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * From a VirtualService object. Short hosts resolve in the VS's namespace
 * (pkg/config/host ResolveShortnameToFQDN, applied when Istio indexes VirtualServices); only
 * mesh-bound ones matter to sidecars (spec.gateways empty or containing "mesh").
 */
export function virtualServiceRef(o: Obj, domain: string): VirtualServiceRef | null {
  const ns = o?.metadata?.namespace,
    name = o?.metadata?.name;
  if (typeof ns !== "string" || typeof name !== "string") return null;
  const gws: unknown[] = Array.isArray(o.spec?.gateways) ? o.spec.gateways : [];
  const hosts = (Array.isArray(o.spec?.hosts) ? o.spec.hosts : [])
    .filter((h: unknown): h is string => typeof h === "string")
    .map((h: string) => (h === "*" || h.includes(".") ? h : `${h}.${ns}.svc.${domain}`).toLowerCase());
  return {
    namespace: ns,
    name,
    hosts,
    exportTo: Array.isArray(o.spec?.exportTo) ? o.spec.exportTo : [],
    mesh: gws.length === 0 || gws.includes("mesh"),
  };
}

/** The VirtualServices among a list of objects, unusable ones dropped. */
export function virtualServiceRefs(items: Obj[], domain: string): VirtualServiceRef[] {
  return items
    .filter((o) => o?.kind === "VirtualService")
    .map((o) => virtualServiceRef(o, domain))
    .filter((v): v is VirtualServiceRef => v !== null);
}

function visibleFrom(vs: VirtualServiceRef, ns: string): boolean {
  return (
    vs.exportTo.length === 0 ||
    vs.exportTo.includes("*") ||
    vs.exportTo.includes(ns) ||
    (vs.exportTo.includes(".") && vs.namespace === ns)
  );
}

/** Does a VirtualService host select `host`? Exact, or a wildcard (`*`, `*.example.com`) covering it. */
function covers(vsHost: string, host: string): boolean {
  if (vsHost === host || vsHost === "*") return true;
  return vsHost.startsWith("*.") && host.endsWith(vsHost.slice(1));
}

/** Extra imports so that every VirtualService routing one of `hosts` stays visible to the caller. */
export function virtualServiceImports(
  hosts: Iterable<string>,
  callerNs: string,
  vss: VirtualServiceRef[],
): { host: string; vs: string }[] {
  const out: { host: string; vs: string }[] = [];
  const list = [...hosts];
  for (const vs of vss) {
    if (!vs.mesh || !visibleFrom(vs, callerNs)) continue;
    for (const vh of vs.hosts)
      if (list.some((h) => covers(vh, h)))
        out.push({ host: `${vs.namespace}/${vh}`, vs: `${vs.namespace}/${vs.name}` });
  }
  return out;
}

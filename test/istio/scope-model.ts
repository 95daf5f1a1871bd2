// TEST DOUBLE: the Istio scope model. For one sidecar proxy (its namespace, its Sidecar or none,
// the service catalog, VirtualServices, the mesh outbound policy) it answers which outbound
// clusters the proxy has and where an HTTP request to host:port goes. Built by reading Istio
// (istio/istio at 86c9f01f); each rule names its source:
//  R1 egress hosts → imported services: pilot/pkg/model/sidecar.go convertIstioListenerToWrapper,
//     selectServices, hostClassification.Matches ("ns/host", "*/host", "./host", "ns/*",
//     "*.suffix" wildcards; "~ns/host" excludes). No Sidecar = "*/*".
//  R2 VirtualServices are imported only under their own namespace or "*":
//     pilot/pkg/model/virtualservice.go SelectVirtualServices.
//  R3 destinations of imported VirtualServices become clusters too: sidecar.go collectImportedServices.
//  R4 one outbound cluster per imported service port, "outbound|port||host"
//     (pilot/pkg/model/service.go BuildSubsetKey); plus PassthroughCluster and BlackHoleCluster.
//  R5 HTTP routing by Host: virtual host domains are the FQDN, and for Kubernetes services the
//     short forms "name.ns", "name.ns.svc", and "name" in the proxy's own namespace
//     (pilot/pkg/networking/core/httproute.go generateAltVirtualHostsForKubernetesService); a
//     matching imported VirtualService routes first.
//  R6 unmatched HTTP: ALLOW_ANY → "allow_any" virtual host to PassthroughCluster, or to the
//     egressProxy's cluster when the Sidecar sets one (httproute.go buildCatchAllVirtualHost);
//     REGISTRY_ONLY → "block_all" (502). A route to a cluster the proxy lacks → 503 NC.
//  R7 a Sidecar's outboundTrafficPolicy replaces the mesh's (sidecar.go initSidecarScopeInternalIndexes).
// Not modelled: TCP/TLS filter chains per VIP, DestinationRule subsets, exportTo of Sidecars,
// delegate VirtualServices, port-scoped egress listeners, ServiceEntry resolution details.
import type { SidecarObj } from "../../controller/sidecar/generate.js";

export interface ModelService {
  namespace: string;
  host: string;
  ports: number[];
  exportTo?: string[];
}
export interface ModelVirtualService {
  namespace: string;
  hosts: string[];
  exportTo?: string[];
  route: { host: string; port?: number };
}
export interface Mesh {
  services: ModelService[];
  virtualServices: ModelVirtualService[];
  outbound: "ALLOW_ANY" | "REGISTRY_ONLY";
  domain?: string;
}
export type Route =
  { cluster: string; code?: undefined } | { cluster: null; code: 502 | 503; flag: "block_all" | "NC" };

function exported(exportTo: string[] | undefined, owner: string, ns: string): boolean {
  return (
    !exportTo?.length || exportTo.includes("*") || exportTo.includes(ns) || (exportTo.includes(".") && owner === ns)
  );
}

/** R1 host match: exact, or the import is a wildcard covering the host. */
function hostMatch(imported: string, host: string): boolean {
  if (imported === "*" || imported === host) return true;
  return imported.startsWith("*.") && host.endsWith(imported.slice(1));
}

export class ProxyScope {
  readonly services: ModelService[];
  readonly virtualServices: ModelVirtualService[];
  readonly outbound: "ALLOW_ANY" | "REGISTRY_ONLY";
  readonly egressProxy: string | null;
  private readonly imports: { ns: string; host: string; exclude: boolean }[];

  constructor(
    readonly namespace: string,
    readonly sidecar: SidecarObj | null,
    readonly mesh: Mesh,
  ) {
    const hosts = sidecar?.spec.egress?.[0]?.hosts ?? ["*/*"];
    this.imports = hosts.map((h) => {
      const [rawNs, host] = [h.slice(0, h.indexOf("/")), h.slice(h.indexOf("/") + 1)];
      const exclude = rawNs.startsWith("~");
      const ns = exclude ? rawNs.slice(1) || "*" : rawNs === "." ? namespace : rawNs;
      return { ns, host, exclude };
    });
    const imported = (ns: string, host: string) => {
      const scoped = (e: { ns: string }) => e.ns === ns || e.ns === "*";
      if (this.imports.some((e) => e.exclude && scoped(e) && hostMatch(e.host, host))) return false;
      return this.imports.some((e) => !e.exclude && scoped(e) && hostMatch(e.host, host));
    };
    const visible = mesh.services.filter((s) => exported(s.exportTo, s.namespace, namespace));
    const svcs = visible.filter((s) => imported(s.namespace, s.host)); // R1
    this.virtualServices = mesh.virtualServices.filter(
      (v) => exported(v.exportTo, v.namespace, namespace) && v.hosts.some((h) => imported(v.namespace, h)),
    ); // R2
    for (const v of this.virtualServices) {
      // R3
      const dest =
        visible.find((s) => s.host === v.route.host && s.namespace === namespace) ??
        visible.find((s) => s.host === v.route.host);
      if (dest && !svcs.includes(dest)) svcs.push(dest);
    }
    this.services = svcs;
    // R7
    const tp = sidecar?.spec.outboundTrafficPolicy;
    this.outbound = tp ? tp.mode : mesh.outbound;
    this.egressProxy = tp?.egressProxy ? `outbound|${tp.egressProxy.port.number}||${tp.egressProxy.host}` : null;
  }

  /** R4 */
  clusters(): Set<string> {
    const out = new Set(["PassthroughCluster", "BlackHoleCluster"]);
    for (const s of this.services) for (const p of s.ports) out.add(`outbound|${p}||${s.host}`);
    return out;
  }

  /** R5 the FQDN a Host names for this proxy, among imported services. */
  private serviceFor(host: string): ModelService | undefined {
    const domain = this.mesh.domain ?? "cluster.local";
    const h = host.toLowerCase();
    return this.services.find((s) => {
      if (s.host === h) return true;
      const i = s.host.indexOf(`.svc.${domain}`);
      if (i < 0) return false;
      const base = s.host.slice(0, i); // name.ns
      return (
        h === base || h === `${base}.svc` || (s.namespace === this.namespace && h === base.slice(0, base.indexOf(".")))
      );
    });
  }

  /** Where an HTTP request for `host` on `port` goes (R5, R6). */
  route(host: string, port: number): Route {
    const have = this.clusters();
    const to = (c: string): Route => (have.has(c) ? { cluster: c } : { cluster: null, code: 503, flag: "NC" });
    const fq = this.serviceFor(host)?.host ?? host;
    const vs = this.virtualServices.find((v) => v.hosts.some((h) => hostMatch(h, fq)));
    if (vs) return to(`outbound|${vs.route.port ?? port}||${vs.route.host}`);
    const svc = this.serviceFor(host);
    if (svc && svc.ports.includes(port)) return to(`outbound|${port}||${svc.host}`);
    if (this.outbound === "REGISTRY_ONLY") return { cluster: null, code: 502, flag: "block_all" };
    return to(this.egressProxy ?? "PassthroughCluster");
  }
}

// What a scoped proxy must import to stay whole. Istio builds a sidecar's clusters, routes and
// DNS table only from the Sidecar's imported egress hosts (pilot/pkg/model/sidecar.go
// convertIstioListenerToWrapper → selectServices, collectImportedServices), so beyond the learned
// destinations the list needs:
//  - meshtune's own services: the filter's proxy_http_call to the collector cluster fails with
//    BadArgument once the cluster is gone (Envoy context.cc httpCall), and an egressProxy host
//    must be imported ("the specified egress host must be imported in the egress section",
//    Istio Sidecar API, OutboundTrafficPolicy.egress_proxy);
//  - extension-provider services (tracing, ext_authz, access-log sinks): LookupCluster resolves
//    them in the proxy's scope (pilot/pkg/model/telemetry_logging.go);
//  - the namespaces of VirtualServices that route a learned host (SelectVirtualServices);
//  - the requested host as well as the destination cluster's host (a VirtualService may route
//    one to the other; the DNS proxy answers only in-scope names).
// Every candidate passes Istio's own host validation; what fails is reported, never emitted.
import type { Edge, UnknownDest } from "../model/graph.js";
import { parseCluster } from "../model/cluster-name.js";
import { HostIndex, compactHosts, importOf, requestedFqdn } from "../istio/hosts.js";
import { egressHostError } from "../istio/validate.js";
import { DEFAULT_MESH, type MeshConfig } from "../istio/mesh-config.js";
import { virtualServiceImports, type VirtualServiceRef } from "../istio/virtual-services.js";

export const DEFAULT_COLLECTOR_HOST = "meshtune-controller.meshtune-system.svc.cluster.local";
export const DEFAULT_FALLBACK_HOST = "meshtune-fallback.meshtune-system.svc.cluster.local";

export interface ScopeContext {
  clusterDomain: string;
  alwaysInclude: string[];
  /** FQDNs of meshtune's own services every Sidecar keeps (collector; fallback when egressProxy is set). */
  meshtuneHosts: string[];
  /** Hosts of fallback proxies for unlearned destinations (meshtune's; Slime's global-sidecar is recognised by its name). */
  fallbackHosts: string[];
  mesh: MeshConfig;
  index: HostIndex;
  virtualServices: VirtualServiceRef[];
}

export const DEFAULT_SCOPE: ScopeContext = {
  clusterDomain: "cluster.local",
  alwaysInclude: ["istio-system/*"],
  meshtuneHosts: [DEFAULT_COLLECTOR_HOST],
  fallbackHosts: [DEFAULT_FALLBACK_HOST],
  mesh: DEFAULT_MESH,
  index: new HostIndex(),
  virtualServices: [],
};

export interface Rejected {
  candidate: string;
  reason: string;
  source: string;
}

/** Validate one candidate; wildcards only from configuration (a VirtualService host), never from traffic. */
function accept(candidate: string, source: string, out: Set<string>, rejected: Rejected[], wildcardOk = false): void {
  const why =
    !wildcardOk && candidate.slice(candidate.indexOf("/") + 1).includes("*")
      ? "wildcard from observed traffic (never widened automatically)"
      : egressHostError(candidate);
  if (why) rejected.push({ candidate, reason: why, source });
  else out.add(candidate);
}

/**
 * A fallback proxy's host: requests sent there went to a destination the caller's Sidecar lacked,
 * so the edge names the requested host, not a dependency on the fallback. meshtune's own fallback
 * (ctx.fallbackHosts), and Slime lazyload's global-sidecar, which Slime's ServiceFence Sidecars
 * import as `*\/global-sidecar.<ns>.svc.cluster.local` (slime-io/slime lazyload README).
 */
export function isFallbackHost(host: string, ctx: ScopeContext): boolean {
  const h = host.toLowerCase();
  return ctx.fallbackHosts.includes(h) || (h.startsWith("global-sidecar.") && h.endsWith(`.svc.${ctx.clusterDomain}`));
}

/** A requested host through a fallback or a Passthrough/BlackHole record: imported only when the registry defines it. */
function registered(
  fqdn: string | null,
  callerNs: string,
  src: string,
  ctx: ScopeContext,
  out: Set<string>,
  rejected: Rejected[],
  lenient = false,
): boolean {
  if (!fqdn) return false;
  const host = serviceOfPodName(fqdn, ctx);
  if (!ctx.index.has(host) && !(lenient && ctx.index.empty)) {
    rejected.push({
      candidate: fqdn,
      reason: "not in the service registry (no Service or ServiceEntry): see the suggested ServiceEntry",
      source: src,
    });
    return false;
  }
  if (ctx.index.exportedTo(host, callerNs) === false) {
    rejected.push({ candidate: host, reason: `not exported to namespace ${callerNs}`, source: src });
    return false;
  }
  accept(importOf(host, ctx.clusterDomain, ctx.index), src, out, rejected);
  return true;
}

/** The imports one learned outbound edge needs: the destination cluster's host and the requested host. */
export function hostsOfEdge(e: Edge, callerNs: string, ctx: ScopeContext, rejected: Rejected[] = []): string[] {
  if (e.dir !== "outbound") return [];
  const c = parseCluster(e.cluster);
  if (c.kind !== "outbound" || !c.host) return [];
  const out = new Set<string>();
  const src = `cluster ${e.cluster}${e.authority ? ` authority ${e.authority}` : ""}`;
  const clusterHost = c.host.toLowerCase();
  if (isFallbackHost(clusterHost, ctx)) {
    // The caller's own egressProxy route keeps the request's Host (httproute.go buildCatchAllVirtualHost).
    // Offline without a catalog the registry is unknown: the requested host is imported as the
    // hop's target (Istio ignores an egress host no service defines).
    if (e.authority)
      registered(
        requestedFqdn(e.authority, callerNs, ctx.clusterDomain, ctx.index),
        callerNs,
        src,
        ctx,
        out,
        rejected,
        true,
      );
    return [...out];
  }
  accept(importOf(clusterHost, ctx.clusterDomain, ctx.index), src, out, rejected);
  const req = e.authority ? requestedFqdn(e.authority, callerNs, ctx.clusterDomain, ctx.index) : null;
  // The same service under its short name ("reviews", "reviews.bookinfo") adds nothing.
  if (req && req !== clusterHost && !clusterHost.startsWith(`${req}.`))
    accept(importOf(serviceOfPodName(req, ctx), ctx.clusterDomain, ctx.index), src, out, rejected);
  return [...out];
}

/**
 * The import a Passthrough/BlackHole record teaches: the registered host it names by HTTP Host,
 * TLS SNI, or original destination address (ClusterIP, ServiceEntry address). A destination the
 * registry does not define teaches nothing: it stays an unregistered note with a suggested
 * ServiceEntry (meshtune never creates one unasked).
 */
export function hostsOfUnknown(
  u: UnknownDest,
  callerNs: string,
  ctx: ScopeContext,
  rejected: Rejected[] = [],
): string[] {
  const out = new Set<string>();
  const src = `${u.kind === "blackhole" ? "blocked" : "passthrough"} ${u.dst}${u.authority ? ` authority ${u.authority}` : ""}${u.sni ? ` sni ${u.sni}` : ""}`;
  const quiet: Rejected[] = [];
  for (const name of [u.authority, u.sni]) {
    const fq = name ? requestedFqdn(name, callerNs, ctx.clusterDomain, ctx.index) : null;
    // Without a catalog the registry is unknown, but NAME.NS.svc.DOMAIN is a Kubernetes Service
    // by its form: a blocked request to one is learned like any registry host.
    const serviceName = !!fq && ctx.index.empty && isServiceFqdn(fq, ctx.clusterDomain);
    if (fq && registered(fq, callerNs, src, ctx, out, quiet, serviceName)) return [...out];
  }
  const byAddr = ctx.index.hostOfAddress(u.dst);
  if (byAddr) registered(byAddr, callerNs, src, ctx, out, rejected);
  return [...out];
}

/** NAME.NAMESPACE.svc.DOMAIN: a Kubernetes Service's own name. */
function isServiceFqdn(h: string, domain: string): boolean {
  const suffix = `.svc.${domain}`;
  return h.endsWith(suffix) && h.slice(0, -suffix.length).split(".").length === 2;
}

/** "mysql-0.mysql.db.svc.cluster.local" (a headless service's pod name) → its service's host, when known. */
function serviceOfPodName(h: string, ctx: ScopeContext): string {
  if (ctx.index.has(h)) return h;
  const rest = h.slice(h.indexOf(".") + 1);
  return ctx.index.has(rest) ? rest : h;
}

/** The import for a provider/meshtune service host (explicit namespace wins). */
function serviceImport(host: string, ns: string | null, ctx: ScopeContext): string {
  return ns ? `${ns}/${host}` : importOf(host, ctx.clusterDomain, ctx.index);
}

/**
 * The whole egress list for a workload in `callerNs` given its learned imports, plus `kept`:
 * hosts already in an applied Sidecar that meshtune has no record of (never shrunk; may be wildcards).
 */
export function scopeHosts(
  learned: Iterable<string>,
  callerNs: string,
  ctx: ScopeContext,
  rejected: Rejected[] = [],
  kept: string[] = [],
): string[] {
  const out = new Set<string>(ctx.alwaysInclude);
  const learnedList = [...learned];
  for (const h of learnedList) accept(h, "learned", out, rejected);
  for (const h of kept) accept(h, "applied Sidecar", out, rejected, true);
  for (const h of ctx.meshtuneHosts) accept(serviceImport(h, null, ctx), "meshtune service", out, rejected);
  for (const p of ctx.mesh.providers)
    accept(serviceImport(p.host, p.namespace, ctx), `extension provider ${p.provider}`, out, rejected);
  const fqdns = learnedList.map((h) => h.slice(h.indexOf("/") + 1));
  for (const v of virtualServiceImports(fqdns, callerNs, ctx.virtualServices))
    accept(v.host, `VirtualService ${v.vs}`, out, rejected, true);
  return compactHosts(out);
}

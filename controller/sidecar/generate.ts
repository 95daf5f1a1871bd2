// Sidecar generation, per ARCHITECTURE.md "Sidecar rules". Pure: graph in, Sidecar objects plus
// report notes out, in a stable order. Scope (what each proxy must import) is scope.ts; names
// and labels pass Kubernetes' validation before anything is emitted.
import { namespaceDefault } from "./namespace-default.js";
import { type Graph, type WorkloadNode, type UnknownDest } from "../model/graph.js";
import { defaultLabels } from "../model/workload.js";
import { suggestServiceEntry, type ServiceEntryObj } from "./service-entry.js";
import { DEFAULT_SCOPE, hostsOfEdge, hostsOfUnknown, scopeHosts, type Rejected, type ScopeContext } from "./scope.js";
import { labelError, namespaceError, objectNameError, fqdnError } from "../istio/validate.js";

export const MANAGED_BY = { "app.kubernetes.io/managed-by": "meshtune" };
export const SIDECAR_API = "networking.istio.io/v1beta1";
/** Istio's per-object analyzer suppression (pkg/config/analysis/analyzers/annotations: galley.istio.io/analyze-suppress). */
export const ANALYZE_SUPPRESS = "galley.istio.io/analyze-suppress";

export interface GenerateOptions extends ScopeContext {
  namespace?: string; // only this namespace
  workload?: string; // only this ns/name
  /** Fallback for unlearned destinations (ALLOW_ANY meshes only; never in REGISTRY_ONLY). */
  egressProxy?: { host: string; port: number };
  labels?: (n: WorkloadNode) => Record<string, string>;
  /** Sidecars already in the cluster (from the catalog): a namespace default is carried over. */
  existingSidecars?: Record<string, unknown>[];
}

export const DEFAULT_GENERATE: GenerateOptions = { ...DEFAULT_SCOPE };

export interface SidecarObj {
  apiVersion: string;
  kind: "Sidecar";
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    workloadSelector: { labels: Record<string, string> };
    egress: { hosts: string[] }[];
    outboundTrafficPolicy?: {
      mode: "ALLOW_ANY" | "REGISTRY_ONLY";
      egressProxy?: { host: string; port: { number: number } };
    };
  };
}

export interface UnregisteredNote {
  workload: string;
  kind: UnknownDest["kind"];
  dst: string;
  authority: string;
  sni: string;
  count: number;
  suggestion: ServiceEntryObj | null;
}
export interface RejectedNote extends Rejected {
  workload: string;
}

export interface GenerateResult {
  sidecars: SidecarObj[];
  /** Non-sidecar proxies (gateways, waypoints, ztunnel) and why they were recognised. */
  proxiesSkipped: { workload: string; kind: string; why: string }[];
  unregistered: UnregisteredNote[];
  rejected: RejectedNote[];
}

/** Learned imports of one workload: every outbound edge's hosts, and registered hosts behind Passthrough/BlackHole records. */
export function learnedImports(n: WorkloadNode, ctx: ScopeContext, rejected: Rejected[] = []): string[] {
  const hosts = new Set<string>();
  for (const e of n.edges.values()) for (const h of hostsOfEdge(e, n.namespace, ctx, rejected)) hosts.add(h);
  for (const u of n.unknown.values()) for (const h of hostsOfUnknown(u, n.namespace, ctx)) hosts.add(h);
  return [...hosts];
}

export function generateSidecars(graph: Graph, opts: GenerateOptions = DEFAULT_GENERATE): GenerateResult {
  const res: GenerateResult = { sidecars: [], proxiesSkipped: [], unregistered: [], rejected: [] };
  const nodes = [...graph.nodes.values()]
    .filter((n) => (!opts.namespace || n.namespace === opts.namespace) && (!opts.workload || n.key === opts.workload))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const n of nodes) {
    for (const u of [...n.unknown.values()].sort((a, b) => b.count - a.count || (a.dst < b.dst ? -1 : 1))) {
      if (hostsOfUnknown(u, n.namespace, opts).length) continue; // a registered host: learned, not unregistered
      res.unregistered.push({
        workload: n.key,
        kind: u.kind,
        dst: u.dst,
        authority: u.authority,
        sni: u.sni,
        count: u.count,
        suggestion: suggestServiceEntry(u, n.namespace),
      });
    }
    if (n.proxy.kind !== "sidecar") {
      res.proxiesSkipped.push({ workload: n.key, kind: n.proxy.kind, why: n.proxy.why });
      continue;
    }
    const rejected: Rejected[] = [];
    const sc = sidecarFor(n, opts, rejected);
    for (const r of rejected) res.rejected.push({ workload: n.key, ...r });
    // A workload that only serves still gets a Sidecar: it needs nothing beyond the defaults.
    if (typeof sc === "string")
      res.rejected.push({ workload: n.key, candidate: `Sidecar ${n.key}`, reason: sc, source: "workload identity" });
    else res.sidecars.push(sc);
  }
  return res;
}

/** The Sidecar for one workload, or the reason none can be emitted (invalid name/labels). */
export function sidecarFor(n: WorkloadNode, opts: GenerateOptions, rejected: Rejected[] = []): SidecarObj | string {
  const existing = opts.existingSidecars ?? [];
  const dflt = existing.length
    ? namespaceDefault(
        (ns) => existing.filter((s) => (s.metadata as { namespace?: string } | undefined)?.namespace === ns),
        n.namespace,
        opts.mesh.rootNamespace,
        (s) =>
          (s.metadata as { labels?: Record<string, string> })?.labels?.["app.kubernetes.io/managed-by"] === "meshtune",
      )
    : null;
  if (dflt?.unmergeable)
    return `default Sidecar ${dflt.namespace}/${dflt.name} cannot be carried into a per-workload Sidecar (${dflt.unmergeable})`;
  // Two Sidecars selecting one pod is undefined behaviour (IST0110): the user's wins, as in the controller.
  const labels = opts.labels?.(n) ?? n.labels ?? defaultLabels(n.name);
  const userSel = existing.find((s) => {
    const m = s.metadata as { namespace?: string; name?: string; labels?: Record<string, string> } | undefined;
    const sel = (s.spec as { workloadSelector?: { labels?: Record<string, string> } } | undefined)?.workloadSelector
      ?.labels;
    return (
      m?.namespace === n.namespace &&
      m?.labels?.["app.kubernetes.io/managed-by"] !== "meshtune" &&
      sel &&
      Object.keys(sel).length > 0 &&
      Object.entries(sel).every(([k, v]) => labels[k] === v)
    );
  });
  if (userSel)
    return `user Sidecar ${n.namespace}/${(userSel.metadata as { name: string }).name} already selects this workload (two Sidecars on one pod: IST0110)`;
  const hosts = scopeHosts(learnedImports(n, opts, rejected), n.namespace, opts, rejected, dflt?.hosts ?? []);
  const ep = dflt?.policy?.egressProxy;
  return buildSidecar(
    n.namespace,
    n.name,
    labels,
    hosts,
    ep ? { host: ep.host, port: ep.port.number } : opts.egressProxy,
    dflt?.policy?.mode ?? opts.mesh.outboundMode,
    !!dflt?.policy,
  );
}

/** A validated Sidecar, or a one-line reason it cannot exist. Never sets a policy the mesh forbids. */
export function buildSidecar(
  namespace: string,
  name: string,
  selector: Record<string, string>,
  hosts: string[],
  egressProxy?: { host: string; port: number },
  meshMode: "ALLOW_ANY" | "REGISTRY_ONLY" = "ALLOW_ANY",
  explicit = false,
): SidecarObj | string {
  const bad =
    namespaceError(namespace) ??
    objectNameError(name) ??
    Object.entries(selector)
      .map(([k, v]) => labelError(k, v))
      .find(Boolean) ??
    (Object.keys(selector).length === 0 ? "empty workload selector would select the whole namespace" : null) ??
    (egressProxy ? fqdnError(egressProxy.host) : null);
  if (bad) return bad;
  const sc: SidecarObj = {
    apiVersion: SIDECAR_API,
    kind: "Sidecar",
    metadata: { name, namespace, labels: { ...MANAGED_BY } },
    spec: { workloadSelector: { labels: { ...selector } }, egress: [{ hosts }] },
  };
  // A Sidecar's own outboundTrafficPolicy replaces the mesh's (sidecar.go initSidecarScopeInternalIndexes):
  // only ALLOW_ANY meshes get the egressProxy fallback; REGISTRY_ONLY stays inherited unless it
  // came from a namespace default this Sidecar replaces (explicit), which must be written out.
  if (egressProxy && meshMode === "ALLOW_ANY") {
    sc.spec.outboundTrafficPolicy = {
      mode: "ALLOW_ANY",
      egressProxy: { host: egressProxy.host, port: { number: egressProxy.port } },
    };
    // Istio's deprecation analyzer says "EgressProxy ignored" (IST0002), yet istiod's generator
    // honours the field (listener_builder.go buildOutboundCatchAllNetworkFiltersOnly, httproute.go
    // buildCatchAllVirtualHost). test/istio-divergences.test.ts proves it for the pinned Istio on
    // HTTP/1.1, HTTP/2, gRPC, TLS and TCP; only with that proof is the warning suppressed here.
    sc.metadata.annotations = { ...sc.metadata.annotations, [ANALYZE_SUPPRESS]: "IST0002" };
  } else if (explicit) sc.spec.outboundTrafficPolicy = { mode: meshMode };
  return sc;
}

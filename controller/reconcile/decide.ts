// The controller's per-workload decision, pure so it can be tested rule by rule:
// opt-in, ownership, minimum observation window, retention (never shrink by a recently seen
// dependency), delete on opt-out, the egressProxy fallback (ALLOW_ANY meshes only), and a scope
// that keeps the proxy whole (sidecar/scope.ts: collector, fallback, providers, VS namespaces).
import { buildSidecar, type SidecarObj } from "../sidecar/generate.js";
import { FIELD_MANAGER } from "../k8s/kube.js";
import { scopeHosts, type Rejected, type ScopeContext } from "../sidecar/scope.js";
import type { NamespaceDefault } from "../sidecar/namespace-default.js";

export const MANAGED_LABEL = "app.kubernetes.io/managed-by";

/** A Sidecar meshtune wrote (and may replace or delete); any other is the user's. */
export const isManaged = (s: { metadata?: { labels?: Record<string, string> } }) =>
  s.metadata?.labels?.[MANAGED_LABEL] === FIELD_MANAGER;
export const ANNOTATION = "meshtune.io/";

export interface HostSeen {
  firstSeenMs: number;
  lastSeenMs: number;
}

export interface WorkloadView {
  namespace: string;
  name: string;
  selector: Record<string, string>;
  /** Labels of the workload's pods: what another Sidecar's workloadSelector is matched against. */
  podLabels?: Record<string, string>;
  enabled: boolean; // opt-in resolved (workload annotation > namespace label > mesh default)
  /** Why this is not a sidecar proxy (gateway, waypoint, ztunnel, not injected); undefined for sidecars. */
  nonSidecar?: string;
  observedSinceMs: number | null; // first time meshtune saw this workload's traffic
  learned: Map<string, HostSeen>; // Sidecar host ("ns/host") → when it was seen
  /** The namespace's (or root namespace's) selector-less Sidecar, which a per-workload one replaces. */
  namespaceDefault?: NamespaceDefault | null;
}

/** A Sidecar already in the cluster that could concern this workload. */
export interface ExistingSidecar {
  name: string;
  managed: boolean;
  hosts: string[];
  selector: Record<string, string> | null; // null: namespace-wide default Sidecar
  /** Hosts meshtune carried from a namespace default last time (annotation CARRIED). */
  carried?: string[];
}

/** Which of a managed Sidecar's hosts came from the namespace default: they follow the default. */
export const CARRIED = `${ANNOTATION}carried-hosts`;

export interface DecideOptions {
  mode: "apply" | "recommend";
  minWindowMs: number;
  retentionMs: number;
  /** The egressProxy for unlearned destinations; null: passthrough (controller/istio/egress-proxy.ts). */
  fallback: { host: string; port: number } | null;
  scope: ScopeContext;
}

export type Decision =
  | { action: "apply"; sidecar: SidecarObj; dropped: string[]; rejected: Rejected[] }
  | { action: "recommend"; sidecar: SidecarObj; dropped: string[]; rejected: Rejected[] }
  | { action: "delete"; name: string; reason: string }
  | { action: "skip"; reason: string; rejected?: Rejected[] };

const selects = (sel: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(sel).every(([k, v]) => labels[k] === v);

export function decide(w: WorkloadView, existing: ExistingSidecar[], o: DecideOptions, nowMs: number): Decision {
  const own = existing.find((s) => s.name === w.name);
  const mine = own?.managed ? own : undefined;
  if (!w.enabled)
    return mine
      ? { action: "delete", name: mine.name, reason: "meshtune disabled for this workload" }
      : { action: "skip", reason: "not enabled" };
  if (w.nonSidecar)
    return mine
      ? { action: "delete", name: mine.name, reason: `${w.nonSidecar}: Sidecar resources do not apply` }
      : { action: "skip", reason: `${w.nonSidecar}: Sidecar does not apply` };
  if (own && !own.managed) return { action: "skip", reason: `Sidecar ${w.namespace}/${own.name} is user-owned` };
  const userSel = existing.find((s) => !s.managed && s.selector && selects(s.selector, w.podLabels ?? w.selector));
  // Two Sidecars selecting one pod is undefined behaviour (Istio analyzer IST0110,
  // ConflictingSidecarWorkloadSelectors, pkg/config/analysis/msg/messages.yaml): the user's wins.
  if (userSel)
    return mine
      ? {
          action: "delete",
          name: mine.name,
          reason: `user-owned Sidecar ${w.namespace}/${userSel.name} now selects this workload (two Sidecars on one pod: IST0110)`,
        }
      : { action: "skip", reason: `user-owned Sidecar ${w.namespace}/${userSel.name} already selects this workload` };
  const dflt = w.namespaceDefault;
  if (dflt?.unmergeable) {
    const why = `default Sidecar ${dflt.namespace}/${dflt.name} cannot be carried into a per-workload Sidecar (${dflt.unmergeable}); meshtune stands aside`;
    return mine ? { action: "delete", name: mine.name, reason: why } : { action: "skip", reason: why };
  }
  if (!mine && (w.observedSinceMs === null || nowMs - w.observedSinceMs < o.minWindowMs))
    return { action: "skip", reason: "observing: minimum window not reached" };

  const learned = new Set<string>();
  const dropped: string[] = [];
  for (const [h, seen] of w.learned) {
    if (nowMs - seen.lastSeenMs <= o.retentionMs) learned.add(h);
    else dropped.push(h);
  }
  // Never shrink by something we have no record of: keep hosts of unknown age. Hosts carried from
  // the default are not ours to keep: they follow the default (narrowed or deleted, they go).
  const carriedBefore = new Set(mine?.carried ?? []);
  const kept = (mine?.hosts ?? []).filter((h) => !w.learned.has(h) && !carriedBefore.has(h));
  const rejected: Rejected[] = [];
  // Istio replaces the namespace default with this Sidecar: its hosts and policy come along.
  const hosts = scopeHosts(learned, w.namespace, o.scope, rejected, [...kept, ...(dflt?.hosts ?? [])]);
  const mode = dflt?.policy?.mode ?? o.scope.mesh.outboundMode;
  const ep = dflt?.policy?.egressProxy;
  const sidecar = buildSidecar(
    w.namespace,
    w.name,
    w.selector,
    hosts,
    ep ? { host: ep.host, port: ep.port.number } : (o.fallback ?? undefined),
    mode,
    !!dflt?.policy,
  );
  if (typeof sidecar === "string") return { action: "skip", reason: `invalid Sidecar: ${sidecar}`, rejected };
  if (dflt?.hosts.length)
    sidecar.metadata.annotations = { ...sidecar.metadata.annotations, [CARRIED]: dflt.hosts.join(",") };
  sidecar.metadata.annotations = {
    ...sidecar.metadata.annotations,
    [`${ANNOTATION}learned-hosts`]: String(w.learned.size),
  };
  return { action: o.mode === "apply" ? "apply" : "recommend", sidecar, dropped: dropped.sort(), rejected };
}

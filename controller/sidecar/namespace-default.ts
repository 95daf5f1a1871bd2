// The Sidecar Istio gives a workload when no Sidecar with a workloadSelector selects it: the
// selector-less Sidecar of its own namespace, else the root namespace's (the oldest when several:
// pilot/pkg/model/push_context.go getSidecarScope, sidecar.go DefaultSidecarScopeForNamespace).
// A per-workload Sidecar replaces that default entirely; Istio merges nothing. So meshtune carries
// the default's egress hosts and outbound policy into what it writes (a namespace REGISTRY_ONLY
// stays REGISTRY_ONLY), or stands aside, saying why, when the default sets what it cannot carry.

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A Sidecar's outboundTrafficPolicy (generate.ts writes the same shape). */
export interface OutboundPolicy {
  mode: "ALLOW_ANY" | "REGISTRY_ONLY";
  egressProxy?: { host: string; port: { number: number } };
}

export interface NamespaceDefault {
  namespace: string;
  name: string;
  /** Egress hosts to keep ("*\/*" left out: it is what no Sidecar means). */
  hosts: string[];
  /** Its outboundTrafficPolicy, replacing the mesh's for the namespace; null: the mesh's. */
  policy: OutboundPolicy | null;
  /** Why its settings cannot be carried into a per-workload Sidecar; null when they can. */
  unmergeable: string | null;
}

const hasSelector = (s: Obj) => Object.keys(s.spec?.workloadSelector?.labels ?? {}).length > 0;

const created = (s: Obj) => Date.parse(s.metadata?.creationTimestamp ?? "") || 0;

/** The oldest default candidate (ties: by name): one pass, no copy, as it runs per workload. */
function oldestDefault(list: Iterable<Obj>, managed: (s: Obj) => boolean): Obj | undefined {
  let best: Obj | undefined;
  for (const s of list) {
    if (managed(s) || hasSelector(s)) continue;
    if (
      !best ||
      created(s) - created(best) < 0 ||
      (created(s) === created(best) && String(s.metadata?.name).localeCompare(String(best.metadata?.name)) < 0)
    )
      best = s;
  }
  return best;
}

/** `managed` tells meshtune's own Sidecars apart: they are never a default. */
export function namespaceDefault(
  sidecarsOf: (ns: string) => Iterable<Obj>,
  ns: string,
  rootNs: string,
  managed: (s: Obj) => boolean,
): NamespaceDefault | null {
  const pick = (n: string) => oldestDefault(sidecarsOf(n), managed);
  const s = pick(ns) ?? (ns === rootNs ? undefined : pick(rootNs));
  if (!s) return null;
  const spec: Obj = s.spec ?? {};
  const egress: Obj[] = spec.egress ?? [];
  const extra = Object.keys(spec).filter((k) => !["egress", "outboundTrafficPolicy"].includes(k));
  let unmergeable: string | null = null;
  if (extra.length) unmergeable = `it sets ${extra.sort().join(", ")}`;
  else if (egress.length > 1 || egress.some((e) => e.port || e.bind || e.captureMode))
    unmergeable = "it has port-scoped egress listeners";
  const p = spec.outboundTrafficPolicy;
  const policy: OutboundPolicy | null = p
    ? {
        // sidecar.proto: REGISTRY_ONLY = 0, so a policy without a mode is REGISTRY_ONLY.
        mode: p.mode === "ALLOW_ANY" ? "ALLOW_ANY" : "REGISTRY_ONLY",
        ...(p.egressProxy?.host
          ? { egressProxy: { host: p.egressProxy.host, port: { number: p.egressProxy.port?.number } } }
          : {}),
      }
    : null;
  return {
    namespace: s.metadata?.namespace,
    name: s.metadata?.name,
    hosts: ((egress[0]?.hosts ?? []) as string[]).filter((h) => h !== "*/*"),
    policy,
    unmergeable,
  };
}

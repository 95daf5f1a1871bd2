// One pass of every traffic- and node-aware recommendation over the learned graph and the
// catalog (the same inputs offline — `meshtune recommend --rules --resources --discovery
// --cryptomb` — and in the controller's /recommendations). Nothing here writes to a cluster.
import type { Graph } from "../model/graph.js";
import type { CatalogService } from "../sidecar/catalog.js";
import type { Savings } from "../sidecar/savings.js";
import { HostIndex } from "../istio/hosts.js";
import { traffic } from "./traffic.js";
import { recommendRules, type RuleRec } from "./rules.js";
import { validateRule } from "./rule-validate.js";
import { recommendResources, qosOf, type ResourceRec, type Usage } from "./resources.js";
import { recommendDiscovery, type DiscoveryRec } from "./discovery.js";
import { recommendCryptoMb, type CryptoMbRec } from "./cryptomb.js";
import { adviseDataplane, type DataplaneAdvice } from "./dataplane-advisor.js";
import { proxyOfPod, workloadOfPod } from "../model/identity.js";

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface TuneInputs {
  graph: Graph;
  services: CatalogService[];
  items: Obj[];
  savings: Savings[] | null;
  domain: string;
  istioVersion: [number, number];
  minRequests: number;
  /** Observed seconds below which no timeout or pool is recommended (rules.ts MIN_WINDOW_S). */
  minWindowS?: number;
  usage?: Map<string, Usage>; // workload → observed istio-proxy usage (Prometheus)
  handshakes?: Map<string, number>; // workload → new TLS handshakes/s (Prometheus)
}
export interface Tuning {
  rules: RuleRec[];
  resources: ResourceRec[];
  discovery: DiscoveryRec;
  cryptomb: CryptoMbRec[];
  /** Per namespace: sidecars, ambient or meshtune's datapath, with costs and what each gives up. */
  dataplane: DataplaneAdvice[];
  /** Objects Istio's schema or semantic rules refuse: never emitted, listed with the reason. */
  invalid: { object: string; errors: string[] }[];
}

export function tune(i: TuneInputs): Tuning {
  const index = new HostIndex(i.services);
  const tr = traffic(i.graph, index, i.domain);
  const eps = new Map<string, number>();
  for (const it of i.items)
    if (it?.kind === "Endpoints" || it?.kind === "EndpointSlice")
      eps.set(
        `${it.metadata?.namespace}/${it.metadata?.labels?.["kubernetes.io/service-name"] ?? it.metadata?.name}`,
        0,
      );
  const endpoints = (host: string) => {
    const s = i.services.find((x) => x.host === host);
    return s && eps.has(`${s.namespace}/${host.split(".")[0]}`) ? s.endpoints : null;
  };
  const userHosts = (kind: "VirtualService" | "DestinationRule") => userRuleHosts(i.items, kind, i.domain);
  // Meshed: a namespace with a sidecar workload in the input, or with an injected pod even when it
  // is idle (the injector's sidecar.istio.io/status annotation, or an istio-proxy container).
  const meshed = new Set([...i.graph.nodes.values()].filter((n) => n.proxy.kind === "sidecar").map((n) => n.namespace));
  for (const o of i.items)
    if (o?.kind === "Pod" && o.metadata?.namespace && isInjected(o)) meshed.add(o.metadata.namespace);
  const rules = recommendRules(tr, {
    meshedNamespaces: meshed,
    minWindowS: i.minWindowS,
    domain: i.domain,
    istioVersion: i.istioVersion,
    minRequests: i.minRequests,
    userVirtualServices: userHosts("VirtualService"),
    userDestinationRules: userHosts("DestinationRule"),
    endpoints,
  });
  const invalid: Tuning["invalid"] = [];
  for (const r of rules)
    for (const k of ["virtualService", "destinationRule"] as const) {
      const o = r[k];
      if (!o) continue;
      const errs = validateRule(o);
      if (errs.length) {
        invalid.push({ object: `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`, errors: errs });
        r[k] = null;
        r.skipped.push(`${o.kind}: refused by Istio validation: ${errs.join("; ")}`);
      }
    }

  const pods = i.items.filter((o) => o?.kind === "Pod");
  const podOf = (w: string) => pods.find((p) => `${p.metadata?.namespace}/${workloadOfPod(p)}` === w);
  const sav = new Map((i.savings ?? []).map((s) => [s.workload, s]));
  const resources: ResourceRec[] = [];
  for (const n of i.graph.nodes.values()) {
    if (n.proxy.kind !== "sidecar") continue;
    const p = podOf(n.key),
      s = sav.get(n.key);
    resources.push(
      recommendResources({
        workload: n.key,
        rps: tr.proxyRps.get(n.key) ?? 0,
        clusters: s?.after.clusters ?? 0,
        endpoints: s?.after.endpoints ?? 0,
        qos: p ? qosOf(p) : "unknown",
        observed: i.usage?.get(n.key),
        kind: kindOf(p),
      }),
    );
  }
  resources.sort((a, b) => a.workload.localeCompare(b.workload));

  // Discovery keeps every namespace with traffic too: hiding an idle meshed one from istiod would
  // leave its proxies without config.
  const withTraffic = new Set([...meshed, ...[...i.graph.nodes.values()].map((n) => n.namespace)]);
  const namespaces = i.items
    .filter((o) => o?.kind === "Namespace")
    .map((o) => o.metadata?.name)
    .filter(Boolean);
  const proxies = [...i.graph.nodes.values()]
    .filter((n) => n.proxy.kind === "sidecar")
    .reduce((a, n) => a + Math.max(1, n.pods.size), 0);
  const discovery = recommendDiscovery({
    services: i.services,
    namespaces,
    meshed: withTraffic,
    proxies,
    traffic: tr,
    domain: i.domain,
    minRequests: i.minRequests,
  });

  const nodes = i.items
    .filter((o) => o?.kind === "Node")
    .map((o) => ({ name: o.metadata?.name, labels: o.metadata?.labels ?? {} }));
  // A live pod says what the proxy is (reports alone only guess: model/graph.ts ProxyInfo).
  const proxyKind = (n: { key: string; proxy: { kind: string } }) => {
    const p = podOf(n.key);
    return p ? proxyOfPod(p).kind : n.proxy.kind;
  };
  const tls = [...i.graph.nodes.values()]
    .filter((n) => proxyKind(n) === "gateway" || i.handshakes?.has(n.key))
    .map((n) => {
      const p = podOf(n.key);
      return {
        workload: n.key,
        kind: proxyKind(n) === "gateway" ? ("gateway" as const) : ("sidecar" as const),
        handshakesPerS: i.handshakes?.get(n.key) ?? null,
        tlsRequests: n.tlsRequests,
        pinnedTo: p?.spec?.nodeSelector ?? null,
        proxyConfig: templateProxyConfig(i.items, n.key, p),
      };
    });
  const dataplane = adviseDataplane({
    graph: i.graph,
    traffic: tr,
    items: i.items,
    savings: i.savings,
    domain: i.domain,
  });
  return { rules, resources, discovery, cryptomb: recommendCryptoMb(tls, nodes), dataplane, invalid };
}

/**
 * Hosts the user's own VirtualServices / DestinationRules cover (meshtune's own are not "user").
 * A short name is resolved in the object's namespace, as Istio does (pilot/pkg/model/config.go
 * ResolveShortnameToFQDN).
 */
export function userRuleHosts(items: Obj[], kind: "VirtualService" | "DestinationRule", domain: string): Set<string> {
  return new Set(
    items
      .filter((o) => o?.kind === kind && o.metadata?.labels?.["app.kubernetes.io/managed-by"] !== "meshtune")
      .flatMap((o) =>
        ((kind === "VirtualService" ? (o.spec?.hosts ?? []) : [o.spec?.host]) as string[])
          .filter(Boolean)
          .map((h) => (h.includes(".") ? h : `${h}.${o.metadata?.namespace ?? "default"}.svc.${domain}`)),
      ),
  );
}

/**
 * The proxy.istio.io/config annotation the workload's template carries: the Deployment (or other
 * controller) in the catalog when present, else the pod's own (a pod carries its template's).
 */
function templateProxyConfig(items: Obj[], workload: string, pod: Obj | undefined): string | null {
  const [ns, name] = workload.split("/");
  const owner = items.find(
    (o) =>
      ["Deployment", "StatefulSet", "DaemonSet"].includes(o?.kind) &&
      o.metadata?.namespace === ns &&
      o.metadata?.name === name,
  );
  const a = (owner?.spec?.template?.metadata ?? pod?.metadata)?.annotations?.["proxy.istio.io/config"];
  return typeof a === "string" ? a : null;
}

/** The controller kind behind a pod: its ReplicaSet's Deployment, else the owner's kind. */
function kindOf(p: Obj | undefined): string {
  const o = p?.metadata?.ownerReferences?.find((r: Obj) => r.controller);
  return !o ? "Deployment" : o.kind === "ReplicaSet" ? "Deployment" : o.kind;
}

function isInjected(p: Obj): boolean {
  const containers = [...(p.spec?.containers ?? []), ...(p.spec?.initContainers ?? [])] as { name?: string }[];
  return !!p.metadata?.annotations?.["sidecar.istio.io/status"] || containers.some((c) => c.name === "istio-proxy");
}

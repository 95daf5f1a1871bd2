// Per namespace: what its observed traffic costs as sidecars, as ambient (ztunnel only, or with
// a waypoint where L7 features are in use) and as sidecars on meshtune's datapath, and what each
// choice gives up. Cost per 1,000 requests/s through a proxy, from Istio's published figures
// (istio.io v1.24, ops/deployment/performance-and-scalability: sidecar ≈ 0.20 vCPU / 60 MB,
// ztunnel ≈ 0.06 vCPU / 12 MB, waypoint ≈ 0.25 vCPU / 60 MB), the same prior resources.ts uses;
// where meshtune measured something (the scoped config's bytes, savings.ts) it replaces the prior.
// Requests are counted where the proxies see them: a sidecar call passes the client's and the
// server's sidecar, an ambient call the client's and the server's ztunnel, plus the waypoint once.
import type { Graph } from "../model/graph.js";
import type { Savings } from "../sidecar/savings.js";
import type { Traffic } from "./traffic.js";
import { hostNamespace } from "../model/cluster-name.js";

export interface Cost {
  vcpu: number;
  memMB: number;
}
export interface DataplaneAdvice {
  namespace: string;
  workloads: number;
  pods: number;
  /** Requests/s through proxies of this namespace (outbound + inbound, as the proxies count). */
  rps: number;
  /** Inbound requests/s that would cross a waypoint (services of this namespace with L7 in use). */
  l7Rps: number;
  l7Why: string[];
  sidecar: Cost;
  ambient: Cost & { waypoint: boolean };
  accelerated: Cost & { savedMB: number };
  choice: "sidecar" | "ambient" | "ambient+waypoint";
  why: string;
  loses: Record<"ambient" | "accelerated", string[]>;
}

const PER_KRPS = {
  sidecar: { vcpu: 0.2, memMB: 60 },
  ztunnel: { vcpu: 0.06, memMB: 12 },
  waypoint: { vcpu: 0.25, memMB: 60 },
};
const IDLE_SIDECAR = { vcpu: 0.01, memMB: 40 }; // resources.ts: an idle Envoy with a small config
const round = (x: number, d = 5) => Math.round(x * 10 ** d) / 10 ** d;
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Namespaces whose services use L7 features only Envoy gives: a VirtualService or DestinationRule
 * (routing, retries, pools, outlier detection) or an AuthorizationPolicy with HTTP-level rules. */
function l7Namespaces(items: Obj[], domain: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (ns: string | undefined, why: string) => {
    if (!ns) return;
    out.set(ns, [...(out.get(ns) ?? []), why]);
  };
  for (const o of items) {
    const ns = o?.metadata?.namespace,
      name = `${o?.kind} ${ns}/${o?.metadata?.name}`;
    if (o?.kind === "VirtualService")
      for (const h of (o.spec?.hosts ?? []) as string[])
        add(h.includes(".") ? (hostNamespace(h, domain) ?? ns) : ns, `${name} routes ${h}`);
    else if (o?.kind === "DestinationRule" && o.spec?.host)
      add(o.spec.host.includes(".") ? (hostNamespace(o.spec.host, domain) ?? ns) : ns, `${name} sets traffic policy`);
    else if (o?.kind === "AuthorizationPolicy") {
      const l7 = JSON.stringify(o.spec?.rules ?? []).match(/"(paths|methods|hosts|notPaths|notMethods)"|request\./);
      if (l7) add(ns, `${name} has HTTP-level rules`);
    }
  }
  return out;
}

export function adviseDataplane(i: {
  graph: Graph;
  traffic: Traffic;
  items: Obj[];
  savings: Savings[] | null;
  domain: string;
}): DataplaneAdvice[] {
  const l7 = l7Namespaces(i.items, i.domain);
  const sav = new Map((i.savings ?? []).map((s) => [s.workload, s]));
  const byNs = new Map<string, { workloads: number; pods: number; rps: number; inRps: number; savedMB: number }>();
  for (const n of i.graph.nodes.values()) {
    if (n.proxy.kind !== "sidecar") continue; // gateways and waypoints stay what they are
    const a = byNs.get(n.namespace) ?? { workloads: 0, pods: 0, rps: 0, inRps: 0, savedMB: 0 };
    a.workloads++;
    a.pods += Math.max(1, n.pods.size);
    a.rps += i.traffic.proxyRps.get(n.key) ?? 0;
    let inbound = 0;
    for (const e of n.edges.values()) if (e.dir === "inbound") inbound += e.count;
    a.inRps += inbound / i.traffic.windowS;
    const s = sav.get(n.key);
    if (s) a.savedMB += (Math.max(0, s.before.bytes - s.after.bytes) / 2 ** 20) * Math.max(1, n.pods.size);
    byNs.set(n.namespace, a);
  }
  const out: DataplaneAdvice[] = [];
  for (const [ns, a] of [...byNs].sort((x, y) => x[0].localeCompare(y[0]))) {
    const k = a.rps / 1000;
    const sidecar = {
      vcpu: round(a.pods * IDLE_SIDECAR.vcpu + k * PER_KRPS.sidecar.vcpu),
      memMB: round(a.pods * IDLE_SIDECAR.memMB + k * PER_KRPS.sidecar.memMB, 1),
    };
    const why7 = l7.get(ns) ?? [];
    const waypoint = why7.length > 0;
    const wk = waypoint ? a.inRps / 1000 : 0;
    // ztunnel runs per node whatever the namespaces do: only its per-request share is counted. A
    // waypoint is one more Envoy: an idle one (as a sidecar's) plus its per-request share.
    const ambient = {
      vcpu: round(k * PER_KRPS.ztunnel.vcpu + (waypoint ? IDLE_SIDECAR.vcpu + wk * PER_KRPS.waypoint.vcpu : 0)),
      memMB: round(k * PER_KRPS.ztunnel.memMB + (waypoint ? IDLE_SIDECAR.memMB + wk * PER_KRPS.waypoint.memMB : 0), 1),
      waypoint,
    };
    const accelerated = {
      vcpu: sidecar.vcpu,
      memMB: round(Math.max(0, sidecar.memMB - a.savedMB), 1),
      savedMB: round(a.savedMB, 1),
    };
    const choice: DataplaneAdvice["choice"] = waypoint ? "ambient+waypoint" : "ambient";
    const cheaper = ambient.vcpu < accelerated.vcpu && ambient.memMB < accelerated.memMB;
    out.push({
      namespace: ns,
      workloads: a.workloads,
      pods: a.pods,
      rps: round(a.rps),
      l7Rps: round(waypoint ? a.inRps : 0),
      l7Why: why7,
      sidecar,
      ambient,
      accelerated,
      choice: cheaper ? choice : "sidecar",
      why: cheaper
        ? `${choice} costs less in both CPU and memory than scoped sidecars for this traffic`
        : `scoped sidecars cost no more than ${choice} in CPU or memory for this traffic`,
      loses: {
        ambient: [
          "per-pod Envoy: L7 routing, retries and policy need a waypoint (per namespace or service account, one more hop)",
          "Sidecar-scoped xDS does not apply (ztunnel gets workload addresses, not Envoy config)",
          ...(waypoint ? [] : ["no L7 telemetry per request without a waypoint: L4 metrics only"]),
          "meshtune's Wasm filter timings (ztunnel runs no Wasm): diagnose gets L4 and kernel evidence only",
        ],
        accelerated: [
          "nothing Envoy does; pods whose capture settings the connect hooks cannot express (excludeInterfaces, other proxy ports) keep iptables",
        ],
      },
    });
  }
  return out;
}

/** The report's section: one block per namespace, figures and what each choice gives up. */
export function renderDataplane(advice: DataplaneAdvice[]): string {
  const c = (x: Cost) => `${(x.vcpu * 1000).toFixed(1)} millicores, ${x.memMB.toFixed(1)} MB`;
  const lines = [
    "## data plane per namespace: sidecars, ambient, or sidecars on meshtune's datapath",
    "(Istio 1.24 per-1,000-rps figures: sidecar 0.20 vCPU / 60 MB, ztunnel 0.06 / 12, waypoint 0.25 / 60; idle Envoy 0.01 vCPU / 40 MB; memory saved by scoped Sidecars from meshtune's savings model)",
  ];
  for (const a of advice) {
    lines.push(
      `${a.namespace}: ${a.workloads} workload(s), ${a.pods} pod(s), ${a.rps} rps through proxies`,
      `  sidecars:              ${c(a.sidecar)}`,
      `  sidecars + meshtune:   ${c(a.accelerated)} (−${a.accelerated.savedMB.toFixed(0)} MB of config; CPU not modelled: the datapath shortens the kernel path, not Envoy's work)`,
      `  ambient${a.ambient.waypoint ? " + waypoint:  " : ":           "}   ${c(a.ambient)}${a.ambient.waypoint ? ` (waypoint for ${a.l7Rps} rps: ${a.l7Why.join("; ")})` : ""}`,
      `  suggested: ${a.choice}: ${a.why}`,
      `  ambient gives up: ${a.loses.ambient.join("; ")}`,
      `  meshtune's datapath gives up: ${a.loses.accelerated.join("; ")}`,
    );
  }
  return lines.join("\n") + "\n";
}

// What the controller reports about its decisions: the Sidecars it would apply, their savings
// against the live catalog, every workload's last decision and why, and the offline report's
// registry notes (destinations outside the registry, refused hosts, non-sidecar proxies).
import type { Graph } from "../model/graph.js";
import { generateSidecars, type GenerateResult, type SidecarObj } from "../sidecar/generate.js";
import { estimateSavings, type Savings } from "../sidecar/savings.js";
import type { CatalogService } from "../sidecar/catalog.js";
import type { ScopeContext } from "../sidecar/scope.js";
import type { Decision } from "./decide.js";

export type WorkloadStatus = {
  workload: string;
  action: string;
  reason?: string;
  sidecar?: SidecarObj;
  expired?: string[];
};

/** One workload's last decision as /recommendations shows it. */
export function statusOf(workload: string, d: Decision): WorkloadStatus {
  return d.action === "skip" || d.action === "delete"
    ? { workload, action: d.action, reason: d.reason }
    : { workload, action: d.action, sidecar: d.sidecar, expired: d.dropped };
}

export function statusOfAll(decisions: Map<string, Decision>): WorkloadStatus[] {
  return [...decisions].sort(([a], [b]) => (a < b ? -1 : 1)).map(([w, d]) => statusOf(w, d));
}

/** The Sidecars the decisions would apply (optionally only for these workloads). */
export function recommendationsOf(decisions: Map<string, Decision>, only?: ReadonlySet<string>): SidecarObj[] {
  return [...decisions].flatMap(([k, d]) =>
    (d.action === "recommend" || d.action === "apply") && (!only || only.has(k)) ? [d.sidecar] : [],
  );
}

export function savingsOf(sidecars: SidecarObj[], services: CatalogService[]): Savings[] {
  return sidecars.map((sc) => estimateSavings(sc, services));
}

export function registryNotes(
  graph: Graph,
  scope: ScopeContext,
): Pick<GenerateResult, "unregistered" | "rejected" | "proxiesSkipped"> {
  const r = generateSidecars(graph, { ...scope });
  return { unregistered: r.unregistered, rejected: r.rejected, proxiesSkipped: r.proxiesSkipped };
}

// `meshtune diff`: what applying the recommendation would change against the Sidecars already in
// the cluster (--kubeconfig) or the catalog, per workload, as `kubectl diff` answers for objects:
// new Sidecars, hosts added and removed, a changed outbound policy, and the conflicts meshtune
// refuses (a user Sidecar already selecting the workload: IST0110).
import type { SidecarObj, RejectedNote } from "../sidecar/generate.js";

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface SidecarDiff {
  lines: string[];
  created: number;
  changed: number;
  unchanged: number;
  conflicts: number;
}

const policyOf = (p: Obj | undefined) =>
  !p
    ? "the mesh's"
    : `${p.mode ?? "REGISTRY_ONLY"}${p.egressProxy ? ` via egressProxy ${p.egressProxy.host}:${p.egressProxy.port?.number}` : ""}`;

export function diffSidecars(recommended: SidecarObj[], existing: Obj[], rejected: RejectedNote[]): SidecarDiff {
  const live = new Map(
    existing.filter((o) => o.kind === "Sidecar").map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o]),
  );
  const d: SidecarDiff = { lines: [], created: 0, changed: 0, unchanged: 0, conflicts: 0 };
  for (const sc of recommended) {
    const key = `${sc.metadata.namespace}/${sc.metadata.name}`;
    const cur = live.get(key);
    const want = sc.spec.egress[0].hosts;
    if (!cur) {
      d.created++;
      d.lines.push(`+ ${key}: new Sidecar, ${want.length} egress hosts: ${want.join(", ")}`);
      continue;
    }
    if (cur.metadata?.labels?.["app.kubernetes.io/managed-by"] !== "meshtune") {
      d.conflicts++;
      d.lines.push(`! ${key}: a Sidecar of that name exists and is not meshtune's; applying would take it over`);
      continue;
    }
    const have: string[] = cur.spec?.egress?.[0]?.hosts ?? [];
    const added = want.filter((h) => !have.includes(h)),
      removed = have.filter((h) => !want.includes(h));
    const policy = policyOf(cur.spec?.outboundTrafficPolicy) !== policyOf(sc.spec.outboundTrafficPolicy);
    if (!added.length && !removed.length && !policy) {
      d.unchanged++;
      d.lines.push(`= ${key}: unchanged`);
      continue;
    }
    d.changed++;
    const parts = [...added.map((h) => `+${h}`), ...removed.map((h) => `-${h}`)];
    if (policy)
      parts.push(
        `outbound policy ${policyOf(cur.spec?.outboundTrafficPolicy)} → ${policyOf(sc.spec.outboundTrafficPolicy)}`,
      );
    d.lines.push(`~ ${key}: ${parts.join(" ")}`);
  }
  for (const r of rejected)
    if (/IST0110|user Sidecar/.test(r.reason)) {
      d.conflicts++;
      d.lines.push(`! ${r.workload}: ${r.reason}; meshtune leaves it alone`);
    }
  d.lines.push(`${d.created} to create, ${d.changed} to change, ${d.unchanged} unchanged, ${d.conflicts} conflicts`);
  return d;
}

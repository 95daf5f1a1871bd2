// Recommendations sorted by what a user can do with them:
//  - apply: whole objects meshtune owns (VirtualServices, DestinationRules named meshtune-*),
//    safe for `kubectl apply -f -`; they join the Sidecars in the one List on stdout;
//  - patches: partial objects (a workload's pod-template annotations, a Service's exportTo), to be
//    merged into objects their owners hold; never on stdout (applied, a partial Deployment would
//    roll its pods and drop its other fields);
//  - guidance: mesh-level settings for the Istio install (discovery scope);
//  - why: per object, the reasons for its fields and what was left out.
// The report (stderr) and --out-dir carry patches, guidance and reasons.
import type { Tuning } from "./tune.js";
import { commentedYaml } from "../k8s/yaml.js";

type Obj = Record<string, unknown>;
export interface Part {
  obj: Obj;
  why: string[];
}
export interface TuningParts {
  apply: Part[];
  patches: Part[];
  guidance: Part[];
  notes: string[];
}
type Want = { rules: boolean; resources: boolean; discovery: boolean; cryptomb: boolean };

export function tuningParts(t: Tuning, want: Want): TuningParts {
  const p: TuningParts = { apply: [], patches: [], guidance: [], notes: [] };
  if (want.rules)
    for (const r of t.rules) {
      const why = [
        `meshtune rules for ${r.host}`,
        ...r.rationale.map((w) => `${w.field}: ${w.why}`),
        ...r.skipped.map((s) => `not set: ${s}`),
      ];
      if (r.virtualService) p.apply.push({ obj: r.virtualService as unknown as Obj, why });
      if (r.destinationRule)
        p.apply.push({
          obj: r.destinationRule as unknown as Obj,
          why: r.virtualService ? [`meshtune rules for ${r.host} (see its VirtualService)`] : why,
        });
    }
  if (want.resources)
    for (const r of t.resources)
      p.patches.push({
        obj: r.patch as unknown as Obj,
        why: [
          `sidecar resources for ${r.workload} (QoS ${r.qos}); apply as a merge patch to the pod template`,
          ...r.evidence,
        ],
      });
  if (want.discovery) {
    const d = t.discovery;
    const saving = `saving: ${d.saving.clustersPerProxy} clusters and ${d.saving.endpointsPerProxy} endpoints fewer on each of ${d.saving.proxies} proxies (model)`;
    if (d.meshConfig)
      p.guidance.push({
        obj: {
          apiVersion: "install.istio.io/v1alpha1",
          kind: "IstioOperator",
          metadata: { name: "meshtune-discovery-scope", namespace: "istio-system" },
          spec: { meshConfig: d.meshConfig },
        },
        why: [
          "istiod discovery scope: merge spec.meshConfig into your IstioOperator or Helm values (meshConfig)",
          `namespaces with no meshed workload that no meshed workload calls: ${d.excludedNamespaces.join(", ")}`,
          saving,
        ],
      });
    for (const e of d.exportTo)
      p.patches.push({
        obj: {
          apiVersion: "v1",
          kind: "Service",
          metadata: {
            name: e.service,
            namespace: e.namespace,
            annotations: { "networking.istio.io/exportTo": e.annotation },
          },
        },
        why: [`exportTo for ${e.host}: ${e.why}; istio-system (gateways) and meshtune-system (the fallback) keep it`],
      });
    p.notes.push(...d.notes);
  }
  if (want.cryptomb)
    for (const c of t.cryptomb)
      if (c.patch)
        p.patches.push({
          obj: c.patch as unknown as Obj,
          why: [
            `CryptoMB for ${c.workload}: ${c.why}`,
            "fallback: true keeps BoringSSL on nodes without the instructions; the node affinity is only preferred",
          ],
        });
      else p.notes.push(`CryptoMB for ${c.workload}: not recommended: ${c.why}`);
  for (const v of t.invalid)
    p.notes.push(`REFUSED by Istio validation (not emitted): ${v.object}: ${v.errors.join("; ")}`);
  return p;
}

/** Parts as reviewable YAML, each object preceded by its reasons (the report, --out-dir files). */
export function renderParts(parts: Part[]): string {
  return parts.map((x) => commentedYaml(x.obj, x.why)).join("---\n");
}

/** Everything, for a human: what to apply, what to merge, what to set in the install, notes. */
export function renderTuning(t: Tuning, want: Want): string {
  const p = tuningParts(t, want);
  return [renderParts([...p.apply, ...p.patches, ...p.guidance]), ...p.notes.map((n) => `# ${n}\n`)]
    .filter(Boolean)
    .join("---\n");
}

// Recommendations as reviewable YAML: every object preceded by the reasons for its fields and
// what was left out and why. Comments only: the documents apply as they are.
import type { Tuning } from "./tune.js";
import { commentedYaml as doc } from "../k8s/yaml.js";

export function renderTuning(
  t: Tuning,
  want: { rules: boolean; resources: boolean; discovery: boolean; cryptomb: boolean },
): string {
  const out: string[] = [];
  if (want.rules)
    for (const r of t.rules) {
      const why = [
        `meshtune rules for ${r.host}`,
        ...r.rationale.map((w) => `${w.field}: ${w.why}`),
        ...r.skipped.map((s) => `not set: ${s}`),
      ];
      if (r.virtualService) out.push(doc(r.virtualService, why));
      if (r.destinationRule)
        out.push(doc(r.destinationRule, r.virtualService ? [`meshtune rules for ${r.host} (see above)`] : why));
    }
  if (want.resources)
    for (const r of t.resources)
      out.push(
        doc(r.patch, [
          `sidecar resources for ${r.workload} (QoS ${r.qos}); apply as a merge patch to the pod template`,
          ...r.evidence,
        ]),
      );
  if (want.discovery) {
    const d = t.discovery;
    const saving = `saving: ${d.saving.clustersPerProxy} clusters and ${d.saving.endpointsPerProxy} endpoints fewer on each of ${d.saving.proxies} proxies (model)`;
    if (d.meshConfig)
      out.push(
        // A whole object (istioctl install -f takes it; Helm users copy spec.meshConfig into their
        // values), never a kind-less fragment that kubectl, jq or istioctl analyze cannot parse.
        doc(
          {
            apiVersion: "install.istio.io/v1alpha1",
            kind: "IstioOperator",
            metadata: { name: "meshtune-discovery-scope", namespace: "istio-system" },
            spec: { meshConfig: d.meshConfig },
          },
          [
            "istiod discovery scope: merge spec.meshConfig into your IstioOperator or Helm values (meshConfig)",
            `namespaces with no meshed workload that no meshed workload calls: ${d.excludedNamespaces.join(", ")}`,
            saving,
          ],
        ),
      );
    for (const e of d.exportTo)
      out.push(
        doc(
          {
            apiVersion: "v1",
            kind: "Service",
            metadata: {
              name: e.service,
              namespace: e.namespace,
              annotations: { "networking.istio.io/exportTo": e.annotation },
            },
          },
          [`exportTo for ${e.host}: ${e.why}; istio-system (gateways) and meshtune-system (the fallback) keep it`],
        ),
      );
    for (const n of d.notes) out.push(`# ${n}\n`);
  }
  if (want.cryptomb)
    for (const c of t.cryptomb)
      out.push(
        c.patch
          ? doc(c.patch, [
              `CryptoMB for ${c.workload}: ${c.why}`,
              "fallback: true keeps BoringSSL on nodes without the instructions; the node affinity is only preferred",
            ])
          : `# CryptoMB for ${c.workload}: not recommended: ${c.why}\n`,
      );
  for (const v of t.invalid)
    out.push(`# REFUSED by Istio validation (not emitted): ${v.object}: ${v.errors.join("; ")}\n`);
  return out.join("---\n");
}

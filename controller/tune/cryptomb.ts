// Adaptive CryptoMB: Envoy's contrib private key provider batches TLS handshakes' RSA/ECDSA
// operations into AVX-512 multi-buffer calls (Istio 1.14+, Envoy 1.20+; istio/proxy builds it in:
// bazel/extension_config/extensions_build_config.bzl ISTIO_ENABLED_CONTRIB_EXTENSIONS). Istio
// turns it on per workload from ProxyConfig.privateKeyProvider.cryptomb in the
// proxy.istio.io/config annotation (pilot/pkg/xds/sds.go toEnvoyTLSSecret). Two details from
// that code: only the nanoseconds part of pollDelay is used (keep it under 1 s), and `fallback`
// becomes the provider's fallback, so a pod on a node without the instructions falls back to
// BoringSSL instead of failing handshakes. The node affinity is *preferred*: the scheduler
// favours capable nodes (the agent's meshtune.io/cryptomb label) and never strands a pod.
export interface TlsWorkload {
  workload: string;
  kind: "gateway" | "sidecar";
  /** New TLS handshakes per second (Prometheus), when known. */
  handshakesPerS: number | null;
  /** The pod template's required node affinity / nodeSelector, if any (it must allow capable nodes). */
  pinnedTo: Record<string, string> | null;
}
/** code: why, as a stable word — "no-capable-node" and "pinned" are definite (an applied patch
 * is withdrawn); "unknown-rate" is not (nothing is withdrawn on missing data). */
export interface CryptoMbRec {
  workload: string;
  apply: boolean;
  code: "apply" | "low-rate" | "unknown-rate" | "no-capable-node" | "pinned";
  why: string;
  patch: Record<string, unknown> | null;
}

export const CRYPTOMB_LABEL = "meshtune.io/cryptomb";

export function recommendCryptoMb(
  ws: TlsWorkload[],
  nodes: { name: string; labels: Record<string, string> }[],
  threshold = 100,
): CryptoMbRec[] {
  const capable = nodes.filter((n) => n.labels[CRYPTOMB_LABEL] === "true");
  return ws.map((w) => {
    const [namespace, name] = w.workload.split("/");
    const terminates = w.kind === "gateway" || (w.handshakesPerS ?? 0) >= threshold;
    if (!terminates)
      return {
        workload: w.workload,
        apply: false,
        code: w.handshakesPerS === null ? "unknown-rate" : "low-rate",
        why:
          w.handshakesPerS === null
            ? "sidecar with no measured handshake rate (give --prometheus)"
            : `${w.handshakesPerS.toFixed(0)} new TLS handshakes/s < ${threshold}`,
        patch: null,
      };
    if (!capable.length)
      return {
        workload: w.workload,
        apply: false,
        code: "no-capable-node",
        why: `no node labelled ${CRYPTOMB_LABEL}=true (the agent found no AVX-512 IFMA/VBMI2 CPU)`,
        patch: null,
      };
    const reachable = w.pinnedTo
      ? capable.filter((n) => Object.entries(w.pinnedTo!).every(([k, v]) => n.labels[k] === v))
      : capable;
    if (!reachable.length)
      return {
        workload: w.workload,
        apply: false,
        code: "pinned",
        why: `pinned by nodeSelector ${JSON.stringify(w.pinnedTo)} to nodes none of which is capable; nothing forced`,
        patch: null,
      };
    const proxyConfig = "privateKeyProvider:\n  cryptomb:\n    pollDelay: 10ms\n    fallback: true\n";
    return {
      workload: w.workload,
      apply: true,
      code: "apply",
      why: `${w.kind === "gateway" ? "gateway (terminates TLS)" : `${w.handshakesPerS!.toFixed(0)} new TLS handshakes/s ≥ ${threshold}`}; ${reachable.length} capable node(s): ${reachable.map((n) => n.name).join(", ")}`,
      patch: {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name, namespace },
        spec: {
          template: {
            metadata: { annotations: { "proxy.istio.io/config": proxyConfig } },
            spec: {
              affinity: {
                nodeAffinity: {
                  preferredDuringSchedulingIgnoredDuringExecution: [
                    {
                      weight: 100,
                      preference: { matchExpressions: [{ key: CRYPTOMB_LABEL, operator: "In", values: ["true"] }] },
                    },
                  ],
                },
              },
            },
          },
        },
      },
    };
  });
}

// Adaptive CryptoMB: Envoy's contrib private key provider batches TLS handshakes' RSA/ECDSA
// operations into AVX-512 multi-buffer calls (Istio 1.14+, Envoy 1.20+; istio/proxy builds it in:
// bazel/extension_config/extensions_build_config.bzl ISTIO_ENABLED_CONTRIB_EXTENSIONS). Istio
// turns it on per workload from ProxyConfig.privateKeyProvider.cryptomb in the
// proxy.istio.io/config annotation (pilot/pkg/xds/sds.go toEnvoyTLSSecret). Two details from
// that code: only the nanoseconds part of pollDelay is used (keep it under 1 s), and `fallback`
// becomes the provider's fallback, so a pod on a node without the instructions falls back to
// BoringSSL instead of failing handshakes. The node affinity is *preferred*: the scheduler
// favours capable nodes (the agent's meshtune.io/cryptomb label) and never strands a pod.
import { parse, stringify } from "yaml";

export interface TlsWorkload {
  workload: string;
  kind: "gateway" | "sidecar";
  /** New TLS handshakes per second (Prometheus), when known. */
  handshakesPerS: number | null;
  /** Requests the input shows arriving over TLS this proxy terminates (SNI in its access log). */
  tlsRequests: number;
  /** The pod template's required node affinity / nodeSelector, if any (it must allow capable nodes). */
  pinnedTo: Record<string, string> | null;
  /** The pod template's current proxy.istio.io/config annotation: the patch keeps its other fields. */
  proxyConfig?: string | null;
}
/** code: why, as a stable word — "no-capable-node" and "pinned" are definite (an applied patch
 * is withdrawn); "unknown-rate" is not (nothing is withdrawn on missing data). */
export interface CryptoMbRec {
  workload: string;
  apply: boolean;
  code: "apply" | "low-rate" | "unknown-rate" | "no-tls-evidence" | "no-capable-node" | "pinned" | "user-config";
  why: string;
  patch: Record<string, unknown> | null;
}

export const CRYPTOMB_LABEL = "meshtune.io/cryptomb";

/**
 * The annotation's value with privateKeyProvider set and every other ProxyConfig field the user
 * wrote kept: a patch replaces the whole annotation string, so it must carry them. An annotation
 * that does not parse as a YAML mapping is kept out of reach: null (nothing is patched).
 */
export function mergeProxyConfig(current: string | null): string | null {
  let base: unknown = {};
  try {
    if (current?.trim()) base = parse(current);
  } catch {
    return null;
  }
  if (base === null || typeof base !== "object" || Array.isArray(base)) return null;
  const cfg = base as Record<string, unknown>;
  if (cfg.privateKeyProvider !== undefined && !(cfg.privateKeyProvider as Record<string, unknown>)?.cryptomb)
    return null;
  return stringify({ ...cfg, privateKeyProvider: { cryptomb: { pollDelay: "10ms", fallback: true } } });
}

export function recommendCryptoMb(
  ws: TlsWorkload[],
  nodes: { name: string; labels: Record<string, string> }[],
  threshold = 100,
): CryptoMbRec[] {
  const capable = nodes.filter((n) => n.labels[CRYPTOMB_LABEL] === "true");
  return ws.map((w) => {
    const [namespace, name] = w.workload.split("/");
    // Evidence, strongest first: a measured handshake rate; else, for a gateway, requests the
    // input shows arriving with an SNI (TLS it terminates). Mesh mTLS at a sidecar is TLS too, but
    // it is per connection, not per request, so only a measured rate can justify it.
    const tls = `${w.tlsRequests} request(s) arrived over TLS (SNI in the access log${w.kind === "sidecar" ? ": inbound mesh mTLS" : ""})`;
    const evidence =
      w.handshakesPerS !== null
        ? w.handshakesPerS >= threshold
          ? `${w.handshakesPerS.toFixed(0)} new TLS handshakes/s ≥ ${threshold} (Prometheus)`
          : null
        : w.kind === "gateway" && w.tlsRequests > 0
          ? `gateway terminating TLS: ${tls}; handshake rate not measured (give --prometheus to confirm)`
          : null;
    if (!evidence)
      return {
        workload: w.workload,
        apply: false,
        code: w.handshakesPerS !== null ? "low-rate" : w.kind === "gateway" ? "no-tls-evidence" : "unknown-rate",
        why:
          w.handshakesPerS !== null
            ? `${w.handshakesPerS.toFixed(0)} new TLS handshakes/s < ${threshold}`
            : w.kind === "gateway"
              ? "gateway, but no TLS appears in the input (no SNI on its requests) and no handshake rate (give --prometheus)"
              : `sidecar with no measured handshake rate (give --prometheus); ${tls}, but mTLS handshakes are per connection`,
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
    const proxyConfig = mergeProxyConfig(w.proxyConfig ?? null);
    if (proxyConfig === null)
      return {
        workload: w.workload,
        apply: false,
        code: "user-config",
        why: "the pod template's proxy.istio.io/config is not a YAML mapping, or sets another privateKeyProvider: left to its owner",
        patch: null,
      };
    return {
      workload: w.workload,
      apply: true,
      code: "apply",
      why: `${evidence}; ${reachable.length} capable node(s): ${reachable.map((n) => n.name).join(", ")}`,
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

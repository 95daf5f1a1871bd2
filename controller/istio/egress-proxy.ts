// How a scoped proxy's first request to an unlearned destination is carried.
//  - egress-proxy: the Sidecar's outboundTrafficPolicy.egressProxy sends the catch-all HTTP route
//    and TCP chain to meshtune's fallback (listener_builder.go buildOutboundCatchAllNetworkFiltersOnly,
//    httproute.go buildCatchAllVirtualHost). Works under STRICT mTLS for HTTP, gRPC and TLS. The
//    field is `$hide_from_docs` in sidecar.proto and Istio's deprecation analyzer calls it ignored
//    (IST0002), so it is used only on Istio lines the oracle proved honour it.
//  - passthrough: ALLOW_ANY without egressProxy; first requests go to PassthroughCluster, directly
//    to the original destination in plaintext. External hosts and PERMISSIVE in-mesh services
//    work; a STRICT in-mesh service refuses the first request until meshtune learns it (the
//    filter's Passthrough record, one reconcile). No extra hop and no fallback cluster.
// test/istio-divergences.test.ts proves egress-proxy for the pinned Istio and checks this constant
// against the oracle's Istio line, so raising the pin without the proof fails the suite.
import { UserError } from "../errors.js";

/** The newest Istio MAJOR.MINOR the oracle proved honours egressProxy (test/istio-oracle pin). */
export const EGRESS_PROXY_PROVEN_THROUGH: [number, number] = [1, 31];

export type UnlearnedMode = "egress-proxy" | "passthrough";

/** The mode for a --unlearned flag value (auto picks by the mesh's Istio version) and why. */
export function unlearnedMode(flag: string, istio: [number, number]): { mode: UnlearnedMode; why: string } {
  if (flag === "egress-proxy" || flag === "passthrough") return { mode: flag, why: `--unlearned ${flag}` };
  if (flag !== "auto") throw new UserError(`--unlearned ${flag}: expected auto, egress-proxy or passthrough`, 2);
  const [M, m] = EGRESS_PROXY_PROVEN_THROUGH;
  const proven = istio[0] < M || (istio[0] === M && istio[1] <= m);
  return proven
    ? { mode: "egress-proxy", why: `Istio ${istio.join(".")}: egressProxy proven honoured through ${M}.${m}` }
    : {
        mode: "passthrough",
        why: `Istio ${istio.join(".")} is newer than ${M}.${m}, the last line proven to honour egressProxy: unlearned destinations go through PassthroughCluster (STRICT in-mesh services refuse the first request until learned)`,
      };
}

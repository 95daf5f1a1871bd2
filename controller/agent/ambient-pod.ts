// Which pods of this node are ambient, as Istio decides it, and whether meshtune may capture them:
//  - enrolled: label istio.io/dataplane-mode=ambient on the pod, or on its namespace with the pod
//    not opting out with istio.io/dataplane-mode=none (Istio pkg/config/constants
//    DataplaneModeLabel, DataplaneModeAmbient, DataplaneModeNone);
//  - never a sidecar pod: an injected pod (sidecar.istio.io/status or an istio-proxy container)
//    is the sidecar capture's (pod-capture.ts), so one pod is never captured both ways;
//  - not hostNetwork, not finished, not ztunnel itself (label app=ztunnel in its namespace);
//  - istio-cni already redirected it (its annotation ambient.istio.io/redirection=enabled, set
//    by istio-cni's node agent once its in-pod rules are in): left to istio-cni, with the reason,
//    so the two never fight over one pod;
//  - `meshtune.io/datapath: "false"` opts a pod out of meshtune's capture only.
// DNS: captured to ztunnel's DNS proxy when the node default says so, overridden per pod by
// ambient.istio.io/dns-capture ("true"/"false"), as istio-cni's pod overrides do.
import type { V1Namespace, V1Pod } from "@kubernetes/client-node";
import { isIP } from "node:net";

export const POD_AMBIENT = 8,
  POD_AMBIENT_DNS = 16; // bpf/meshtune.h MT_POD_AMBIENT*

export type AmbientDecision = { ambient: { ips: string[]; dns: boolean } } | { skip: string } | null;

const MODE = "istio.io/dataplane-mode";

/** null: not an ambient pod at all (the sidecar decision applies). */
export function ambientPod(
  pod: V1Pod,
  ns: V1Namespace | undefined,
  dnsDefault: boolean,
  ztunnelNamespace = "istio-system",
): AmbientDecision {
  const l = pod.metadata?.labels ?? {},
    a = pod.metadata?.annotations ?? {};
  const nsMode = ns?.metadata?.labels?.[MODE];
  const enrolled = l[MODE] === "ambient" || (nsMode === "ambient" && l[MODE] !== "none");
  if (!enrolled) return null;
  const injected =
    !!a["sidecar.istio.io/status"] ||
    [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].some((c) => c.name === "istio-proxy");
  if (injected) return null;
  if (pod.spec?.hostNetwork) return { skip: "ambient-host-network" };
  if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") return { skip: "finished" };
  // Only ztunnel's own pod: the label alone, in a tenant's namespace, must not opt a pod out.
  if (isZtunnelPod(pod, ztunnelNamespace)) return { skip: "ztunnel" };
  if (a["meshtune.io/datapath"] === "false") return { skip: "opted-out" };
  if (a["ambient.istio.io/redirection"] === "enabled")
    return { skip: "istio-cni: ambient.istio.io/redirection=enabled, its in-pod rules own this pod" };
  const ips = (pod.status?.podIPs?.map((p) => p.ip) ?? (pod.status?.podIP ? [pod.status.podIP] : [])).filter((ip) =>
    isIP(ip),
  );
  if (!ips.length) return { skip: "ambient-no-ip" };
  const dnsA = a["ambient.istio.io/dns-capture"];
  return { ambient: { ips: ips.slice(0, 8), dns: dnsA === "true" ? true : dnsA === "false" ? false : dnsDefault } };
}

/** ztunnel's pod: the one Istio's chart labels app=ztunnel, in Istio's system namespace. */
export function isZtunnelPod(pod: V1Pod, ztunnelNamespace: string): boolean {
  return pod.metadata?.labels?.app === "ztunnel" && pod.metadata?.namespace === ztunnelNamespace;
}

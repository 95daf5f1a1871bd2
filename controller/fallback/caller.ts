// Who is calling the fallback. Only the connection's source address counts: the fallback's pod
// runs its sidecar with TPROXY interception (manifests/fallback.yaml), whose inbound listener
// keeps the caller's address (istio pilot/pkg/networking/core/listener_inbound.go: original_src
// under TPROXY), and the pod informer maps that address to a pod and its service account (the
// identity its certificate carries). x-forwarded-client-cert is never used: a first request on a
// port the caller's Sidecar has no HTTP listener for leaves through the catch-all as TCP and
// reaches the fallback on its sidecar's TCP chain, where no XFCC is added and any XFCC present
// is what the client wrote (istio filterchain_options.go: the chain follows the client's ALPN).
import type { VerifiedCaller } from "./route.js";

export type PodOfAddress = (ip: string) => { namespace: string; serviceAccount: string } | null;

// Sources that hide the caller: the sidecar's REDIRECT bind address and in-pod loopback.
const HIDDEN = new Set(["127.0.0.6", "::6", "127.0.0.1", "::1"]);

/** The caller behind a connection from `remote`, or why it cannot be verified. */
export function verifyCaller(remote: string | undefined, podOf: PodOfAddress): VerifiedCaller | string {
  const ip = (remote ?? "").replace(/^::ffff:/, "");
  if (!ip) return "connection has no source address";
  if (HIDDEN.has(ip))
    return `the caller's address is hidden (connection from ${ip}): the fallback's sidecar must run with sidecar.istio.io/interceptionMode: TPROXY`;
  const p = podOf(ip);
  if (!p) return `no pod has address ${ip}`;
  return { namespace: p.namespace, serviceAccount: p.serviceAccount, podIp: ip };
}

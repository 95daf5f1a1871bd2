// What a report may say, beyond its JSON shape: every cluster, host, authority and address must
// be something a real Envoy sidecar could have produced, and every destination host must be one
// the caller's namespace can see. A report failing any check is refused whole (400/403), so
// nothing from it becomes graph state, learned state or config unchecked.
import { parseCluster } from "../model/cluster-name.js";
import { fqdnError, wildcardDomainError } from "../istio/validate.js";
import { requestedFqdn, type HostIndex } from "../istio/hosts.js";
import type { ReportV1 } from "./report-schema.js";

export type ContentReason =
  "invalid-cluster" | "invalid-host" | "invalid-authority" | "invalid-address" | "unreachable-host";
export interface ContentError {
  status: 400 | 403;
  reason: ContentReason;
  detail: string;
}

// Istio cluster names: "dir|port|subset|host" or the SNI form; Envoy specials. No spaces, quotes, slashes.
const CLUSTER_CHARS = /^[A-Za-z0-9_.|:*-]{1,512}$/;
// Envoy accepts an :authority only if nghttp2_check_authority / HeaderUtility::authorityIsValid
// does (no spaces, quotes, control characters); meshtune further refuses '*' and anything that
// is not host[:port] with a DNS-like host (underscores allowed, as Envoy allows them) or an IP.
const AUTH_HOST =
  /^(?:[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;
const ADDRESS = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\]):\d{1,5}$/i;

/** First problem with `r` as sent by a caller in namespace `callerNs`, or null. */
export function reportContentError(
  r: ReportV1,
  callerNs: string,
  domain: string,
  index: HostIndex | null,
): ContentError | null {
  const svcSuffix = `.svc.${domain}`;
  for (const [i, e] of r.edges.entries()) {
    const at = `edge ${i}`;
    if (!CLUSTER_CHARS.test(e.cluster))
      return {
        status: 400,
        reason: "invalid-cluster",
        detail: `${at}: cluster ${JSON.stringify(e.cluster.slice(0, 80))} is not an Istio cluster name`,
      };
    const c = parseCluster(e.cluster);
    if (c.kind === "outbound" || (c.kind === "inbound" && c.host)) {
      const err = hostError(c.host, svcSuffix, index);
      if (err) return { status: 400, reason: "invalid-host", detail: `${at}: ${err}` };
    }
    if (e.authority && (e.authority.length > 255 || !AUTH_HOST.test(e.authority)))
      return {
        status: 400,
        reason: "invalid-authority",
        detail: `${at}: authority ${JSON.stringify(e.authority.slice(0, 80))} is not host[:port]`,
      };
    if (e.dir === "outbound" && c.kind === "outbound" && index && index.exportedTo(c.host, callerNs) === false)
      return {
        status: 403,
        reason: "unreachable-host",
        detail: `${at}: ${c.host} is not exported to namespace ${callerNs}`,
      };
    // The requested host is imported too (sidecar/scope.ts): check what it resolves to, not only the cluster.
    const via = e.dir === "outbound" ? unexported(e.authority, callerNs, domain, index) : null;
    if (via) return { status: 403, reason: "unreachable-host", detail: `${at}: authority ${via}` };
  }
  for (const [i, u] of (r.unknown ?? []).entries()) {
    const at = `unknown ${i}`;
    if (!ADDRESS.test(u.dst))
      return {
        status: 400,
        reason: "invalid-address",
        detail: `${at}: dst ${JSON.stringify(u.dst.slice(0, 80))} is not ip:port`,
      };
    for (const [what, v] of [
      ["authority", u.authority],
      ["sni", u.sni],
    ] as const)
      if (v && (v.length > 255 || !AUTH_HOST.test(v)))
        return {
          status: 400,
          reason: "invalid-authority",
          detail: `${at}: ${what} ${JSON.stringify(v.slice(0, 80))} is not host[:port]`,
        };
    const via = unexported(u.authority, callerNs, domain, index) ?? unexported(u.sni, callerNs, domain, index);
    if (via) return { status: 403, reason: "unreachable-host", detail: `${at}: ${via}` };
  }
  return null;
}

/** Why a host a report names (as the caller's resolver would read it) is out of the caller's reach, or null. */
function unexported(
  name: string | undefined,
  callerNs: string,
  domain: string,
  index: HostIndex | null,
): string | null {
  if (!name || !index) return null;
  const fq = requestedFqdn(name, callerNs, domain, index);
  return fq && index.exportedTo(fq, callerNs) === false ? `${fq} is not exported to namespace ${callerNs}` : null;
}

/**
 * A cluster's host: a DNS name Istio's ValidateFQDN accepts; a wildcard only when it is a
 * ServiceEntry host the catalog defines, and never one covering the cluster's service domain
 * (`*`, `*.svc.cluster.local`, `*.ns.svc.cluster.local` would import whole namespaces).
 */
function hostError(host: string, svcSuffix: string, index: HostIndex | null): string | null {
  if (!host.includes("*")) return fqdnError(host);
  if (host === "*" || !host.startsWith("*.") || host.endsWith(svcSuffix) || svcSuffix.endsWith(host.slice(1)))
    return `wildcard host ${JSON.stringify(host.slice(0, 80))} refused`;
  if (index && !index.has(host))
    return `wildcard host ${JSON.stringify(host.slice(0, 80))} is not a known ServiceEntry host`;
  return wildcardDomainError(host);
}

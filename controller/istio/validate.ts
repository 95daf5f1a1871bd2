// Istio's and Kubernetes' own validation rules for what meshtune emits, so an invalid candidate
// is dropped and reported instead of being printed or applied. The CRD schema has no host
// pattern; these follow the Go validators:
//  - istio/istio pkg/config/validation/agent/validation.go: ValidateNamespaceSlashWildcardHostname
//    (isGateway=false), validateSidecarOrGatewayHostnamePart, ValidateWildcardDomain,
//    CheckDNS1123Preconditions, ValidateDNS1123Labels, ValidatePartialWildCard
//  - istio/istio pkg/config/labels/instance.go: IsDNS1123Label, IsWildcardDNS1123Label
//  - kubernetes apimachinery validation: IsDNS1123Subdomain (object names), IsQualifiedName and
//    IsValidLabelValue (labels)
import { boundedMemo } from "../model/bounded-memo.js";

const DNS1123_LABEL = /^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$/; // labels.dns1123LabelFmt (Istio accepts upper case)
const WILDCARD_LABEL = /^(?:\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$/; // labels.wildcardPrefix

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

/** ValidateDNS1123Labels: every label valid, top-level label not all-numeric, one trailing dot allowed. */
function dnsLabelsError(domain: string): string | null {
  const parts = domain.split(".");
  if (/^\d+$/.test(parts[parts.length - 1]))
    return `domain name "${domain}" invalid (top level domain cannot be all-numeric)`;
  for (let i = 0; i < parts.length; i++) {
    if (i === parts.length - 1 && parts[i] === "") return null;
    if (!isDns1123Label(parts[i])) return `domain name "${domain}" invalid (label "${parts[i]}" invalid)`;
  }
  return null;
}

/** ValidateWildcardDomain: DNS-1123 with an optional wildcard first label. */
export function wildcardDomainError(domain: string): string | null {
  if (domain.length > 255) return `domain name too long (max 255)`;
  if (domain.length === 0) return "empty domain name not allowed";
  const i = domain.indexOf(".");
  const first = i < 0 ? domain : domain.slice(0, i);
  if (first.length > 63 || !WILDCARD_LABEL.test(first))
    return `domain name "${domain}" invalid (label "${first}" invalid)`;
  return i < 0 ? null : dnsLabelsError(domain.slice(i + 1));
}

/**
 * One Sidecar egress host ("ns/dnsName"); null when Istio accepts it, else the first reason.
 * Memoised: every Sidecar of a reconcile pass checks its hosts, and hosts recur across workloads.
 */
export const egressHostError: (h: string) => string | null = boundedMemo((h) => egressHostErrorUncached(h));

function egressHostErrorUncached(h: string): string | null {
  const slash = h.indexOf("/");
  if (slash < 0) return "host must be of form namespace/dnsName";
  const ns = h.slice(0, slash),
    name = h.slice(slash + 1);
  if (!ns || !name) return "config namespace and dnsName in host entry cannot be empty";
  const bareNs = ns.startsWith("~") ? ns.slice(1) : ns;
  if (bareNs !== "" && bareNs !== "*" && bareNs !== "." && !isDns1123Label(bareNs))
    return `invalid namespace value "${ns}" in sidecar`;
  if (name !== "*" && !name.includes(".")) return "short names (non FQDN) are not allowed";
  const d = wildcardDomainError(name);
  if (d) return d; // also rejects IPs: their last label is all-numeric
  if (name.includes("*") && name.length !== 1 && !name.startsWith("*."))
    return `partial wildcard "${name}" not allowed`;
  return null;
}

/** agent.ValidateFQDN (egressProxy.host): a wildcard-free DNS name with at least one dot. */
export function fqdnError(h: string): string | null {
  if (!h.includes(".")) return `"${h}" is not a fully qualified domain name`;
  if (h.includes("*")) return `"${h}" must not be a wildcard`;
  return wildcardDomainError(h);
}

/** Kubernetes object name (IsDNS1123Subdomain): ≤ 253, lower case, labels joined by dots. */
export function objectNameError(n: string): string | null {
  if (n.length === 0 || n.length > 253) return `name "${n.slice(0, 80)}" must be 1-253 characters`;
  if (!/^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/.test(n))
    return `name "${n.slice(0, 80)}" is not a DNS-1123 subdomain`;
  return null;
}

/** Namespace names are DNS-1123 labels, lower case. */
export function namespaceError(n: string): string | null {
  return n.length > 0 && n.length <= 63 && /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/.test(n)
    ? null
    : `namespace "${n.slice(0, 80)}" is not a DNS-1123 label`;
}

const LABEL_NAME = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;

/** Label key (IsQualifiedName) and value (IsValidLabelValue). */
export function labelError(k: string, v: string): string | null {
  const slash = k.lastIndexOf("/");
  const prefix = slash < 0 ? "" : k.slice(0, slash),
    name = slash < 0 ? k : k.slice(slash + 1);
  if (slash >= 0 && objectNameError(prefix)) return `label key "${k}": invalid prefix`;
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name))
    return `label key "${k}" is not a qualified name`;
  if (v.length > 63 || (v !== "" && !LABEL_NAME.test(v))) return `label ${k}="${v.slice(0, 80)}": invalid value`;
  return null;
}

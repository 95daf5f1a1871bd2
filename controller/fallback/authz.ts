// Would the destination's own sidecar let this caller in? The fallback forwards with its own
// identity, so it must never carry a caller past an AuthorizationPolicy the caller would not
// pass itself. It decides only what it can decide exactly, from Istio's semantics
// (istio.io/latest/docs/reference/config/security/authorization-policy/ and
// istio/istio pilot/pkg/security/authz/builder: CUSTOM, then DENY, then ALLOW; no ALLOW policy
// on a workload allows; an ALLOW policy without rules allows nothing; `{}` as a rule matches
// everything; sources in `from` are ORed, fields within a source ANDed; values match exactly or
// by one leading/trailing `*`). Source principals and namespaces (and their not- forms) are
// decided; any other field, a `to` or `when`, CUSTOM or AUDIT is "cannot prove" — and the
// fallback does not forward what it cannot prove allowed.
export interface PolicySource {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  [other: string]: unknown;
}
export interface PolicyRule {
  from?: { source?: PolicySource }[];
  to?: unknown[];
  when?: unknown[];
}
export interface Policy {
  metadata?: { namespace?: string; name?: string };
  spec?: {
    selector?: { matchLabels?: Record<string, string> };
    targetRef?: unknown;
    targetRefs?: unknown[];
    action?: string;
    rules?: PolicyRule[];
    provider?: unknown;
  };
}
export interface Principal {
  namespace: string;
  serviceAccount: string;
  trustDomain: string;
}
/** The destination's workloads as far as they are known: namespace and the labels all its pods carry (a Service's selector), null when unknown. */
export interface DestinationPods {
  namespace: string;
  labels: Record<string, string> | null;
}
export type Verdict = { allowed: true } | { allowed: false; proven: boolean; reason: string };

type Tri = "yes" | "no" | "maybe";
const glob = (pattern: string, v: string) =>
  pattern === "*" ||
  pattern === v ||
  (pattern.startsWith("*") && v.endsWith(pattern.slice(1))) ||
  (pattern.endsWith("*") && v.startsWith(pattern.slice(0, -1)));
const KNOWN = new Set(["principals", "notPrincipals", "namespaces", "notNamespaces"]);

/**
 * Values the glob above decides exactly: a `*` only at one end (Istio turns every `*` of a
 * namespace into a regex wildcard: pilot/pkg/security/authz/model generator.go), and principals
 * of the caller's own trust domain (Istio also matches `cluster.local` and trust-domain aliases:
 * pkg/spiffe and trustdomain/bundle.go; an alias list is not known here).
 */
function decidable(values: string[] | undefined, trustDomain: string | null): boolean {
  return (values ?? []).every((v) => {
    const inner = v.length > 2 && v.slice(1, -1).includes("*");
    if (inner) return false;
    if (trustDomain === null || v === "*" || v.startsWith("*")) return true;
    const td = v.split("/ns/")[0];
    return td === trustDomain || td.endsWith("*");
  });
}

function sourceMatches(s: PolicySource, p: Principal): Tri {
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) return "maybe";
  if (!decidable(s.principals, p.trustDomain) || !decidable(s.notPrincipals, p.trustDomain)) return "maybe";
  if (!decidable(s.namespaces, null) || !decidable(s.notNamespaces, null)) return "maybe";
  const principal = `${p.trustDomain}/ns/${p.namespace}/sa/${p.serviceAccount}`;
  if (s.principals && !s.principals.some((x) => glob(x, principal))) return "no";
  if (s.notPrincipals?.some((x) => glob(x, principal))) return "no";
  if (s.namespaces && !s.namespaces.some((x) => glob(x, p.namespace))) return "no";
  if (s.notNamespaces?.some((x) => glob(x, p.namespace))) return "no";
  return "yes";
}

function ruleMatches(r: PolicyRule, p: Principal): Tri {
  let from: Tri = "yes";
  if (r.from?.length) {
    const each = r.from.map((f) => (f.source ? sourceMatches(f.source, p) : "maybe"));
    from = each.includes("yes") ? "yes" : each.includes("maybe") ? "maybe" : "no";
  }
  if (from === "no") return "no";
  if (r.to?.length || r.when?.length) return "maybe"; // operations and conditions: not decided here
  return from;
}

/** Whether a policy may select the destination's pods: surely not only when a selector label contradicts the pods' known labels. */
function mayApply(pol: Policy, d: DestinationPods, rootNs: string): boolean {
  const ns = pol.metadata?.namespace;
  if (ns !== d.namespace && ns !== rootNs) return false;
  if (pol.spec?.targetRef || pol.spec?.targetRefs?.length) return true; // waypoint/gateway binding: assume it may
  const sel = pol.spec?.selector?.matchLabels;
  if (!sel || !d.labels) return true;
  return Object.entries(sel).every(([k, v]) => d.labels![k] === undefined || d.labels![k] === v);
}

const name = (p: Policy) => `${p.metadata?.namespace}/${p.metadata?.name}`;

export function authorize(caller: Principal, dest: DestinationPods, policies: Policy[], rootNs: string): Verdict {
  const applying = policies.filter((p) => mayApply(p, dest, rootNs));
  for (const p of applying) {
    const action = p.spec?.action ?? "ALLOW";
    if (action === "CUSTOM" || action === "AUDIT")
      return { allowed: false, proven: false, reason: `${action} policy ${name(p)} is not evaluated here` };
    if (action !== "ALLOW" && action !== "DENY")
      return { allowed: false, proven: false, reason: `policy ${name(p)} has unknown action ${action}` };
  }
  for (const p of applying.filter((x) => x.spec?.action === "DENY"))
    for (const r of p.spec?.rules ?? []) {
      const m = ruleMatches(r, caller);
      if (m === "yes") return { allowed: false, proven: true, reason: `denied by ${name(p)}` };
      if (m === "maybe") return { allowed: false, proven: false, reason: `DENY policy ${name(p)} may match` };
    }
  const allows = applying.filter((x) => (x.spec?.action ?? "ALLOW") === "ALLOW");
  if (allows.length === 0) return { allowed: true };
  let unsure: string | null = null;
  for (const p of allows)
    for (const r of p.spec?.rules ?? []) {
      const m = ruleMatches(r, caller);
      if (m === "yes") return { allowed: true };
      if (m === "maybe") unsure ??= `ALLOW policy ${name(p)} may match only on fields not evaluated here`;
    }
  return unsure
    ? { allowed: false, proven: false, reason: unsure }
    : { allowed: false, proven: true, reason: `no ALLOW policy admits ${caller.namespace}/${caller.serviceAccount}` };
}

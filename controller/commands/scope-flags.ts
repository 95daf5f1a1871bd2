// Flags that shape every Sidecar's scope, checked with Istio's own rules before anything runs
// (shared by `recommend` and `controller`): a bad one is a usage error naming the flag.
import { UserError } from "../errors.js";
import { egressHostError, fqdnError } from "../istio/validate.js";

/**
 * A service flag's host as Istio names the service's clusters. Istio uses egressProxy.host
 * literally for the cluster name (`outbound|port||host`, pilot/pkg/networking/core/httproute.go),
 * so `svc.ns` would name a cluster no proxy has and every unlearned request would fail with 503 NC
 * (shown by test/istio-divergences.test.ts). Kubernetes short forms are completed to
 * NAME.NAMESPACE.svc.DOMAIN; a single label cannot be (its namespace is unknown) and is refused.
 */
export function qualifyServiceHost(flag: string, h: string, domain: string): string {
  const e = fqdnError(h);
  if (e) throw new UserError(`${flag} ${h}: ${e}; use NAME.NAMESPACE.svc.${domain}`, 2);
  const labels = h.replace(/\.$/, "").toLowerCase().split(".");
  if (labels.length === 2 || (labels.length === 3 && labels[2] === "svc"))
    return `${labels[0]}.${labels[1]}.svc.${domain}`;
  return h.replace(/\.$/, "").toLowerCase();
}

export function checkScopeFlags(alwaysInclude: string[], services: [flag: string, host: string | undefined][]): void {
  for (const h of alwaysInclude) {
    const e = egressHostError(h);
    if (e) throw new UserError(`--always-include ${h}: ${e}`, 2);
  }
  for (const [flag, h] of services) {
    const e = h ? fqdnError(h) : null;
    if (e) throw new UserError(`${flag} ${h}: ${e}`, 2);
  }
}

// Flags that shape every Sidecar's scope, checked with Istio's own rules before anything runs
// (shared by `recommend` and `controller`): a bad one is a usage error naming the flag.
import { UserError } from "../errors.js";
import { egressHostError, fqdnError } from "../istio/validate.js";

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

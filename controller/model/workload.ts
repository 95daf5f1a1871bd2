// Offline guesses, used only when no pod catalog is given (model/identity.ts is the real rule,
// from Pod objects); the report names every pod whose identity was guessed this way.

// Kubernetes generated suffixes use this vowel-free alphabet (apimachinery rand.SafeEncodeString),
// which keeps real words like "exporter" from being mistaken for a hash.
const SAFE = "[bcdfghjklmnpqrstvwxz2456789]";
const DEPLOYMENT = new RegExp(`^(.+)-${SAFE}{6,10}-${SAFE}{5}$`);
const STATEFULSET = /^(.+)-\d+$/;
const GENERATED = new RegExp(`^(.+)-${SAFE}{5}$`); // DaemonSet, Job, bare ReplicaSet

/** productpage-v1-6987489c74-6fgz8 → productpage-v1; mysql-0 → mysql; node-exporter-x7k2p → node-exporter. */
export function workloadFromPod(pod: string): string {
  return (DEPLOYMENT.exec(pod) ?? STATEFULSET.exec(pod) ?? GENERATED.exec(pod))?.[1] ?? pod;
}
/** Offline selector labels: app = name without a trailing version, plus version when present. */
export function defaultLabels(workload: string): Record<string, string> {
  const m = /^(.+)-(v\d+[a-z0-9]*)$/.exec(workload);
  return m ? { app: m[1], version: m[2] } : { app: workload };
}

/** Name guess for gateways (Helm: istio-ingress, istio-ingressgateway, istio-egressgateway, *-gateway). */
export function looksLikeGateway(name: string): boolean {
  return /(^|-)(ingress|egress)(gateway)?(-|$)|(^|-)gateway(-|$)/.test(name);
}

// Workload identity: Istio's WORKLOAD_NAME, derived offline from pod names.

/** productpage-v1-6987489c74-6fgz8 → productpage-v1; mysql-0 → mysql; node-exporter-x7k2p → node-exporter. */
export function workloadFromPod(pod: string): string {
  let m = /^(.+)-[a-z0-9]{6,10}-[a-z0-9]{5}$/.exec(pod); // Deployment: ReplicaSet hash + suffix
  if (m && /\d/.test(pod.slice(m[1].length))) return m[1];
  m = /^(.+)-\d+$/.exec(pod); // StatefulSet ordinal
  if (m) return m[1];
  m = /^(.+)-[a-z0-9]{5}$/.exec(pod); // DaemonSet/Job suffix (always has a digit or is random)
  if (m && /\d/.test(pod.slice(m[1].length))) return m[1];
  return pod;
}

/** Offline selector labels: app = name without a trailing version, plus version when present. */
export function defaultLabels(workload: string): Record<string, string> {
  const m = /^(.+)-(v\d+[a-z0-9]*)$/.exec(workload);
  return m ? { app: m[1], version: m[2] } : { app: workload };
}

export function isGatewayWorkload(name: string): boolean {
  return /(^|-)(ingress|egress)?gateway(-|$)/.test(name);
}

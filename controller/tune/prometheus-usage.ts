// Calibration from Prometheus: the istio-proxy container's real CPU and memory (cAdvisor's
// container_cpu_usage_seconds_total / container_memory_working_set_bytes, labelled
// namespace/pod/container by the kubelet), and new TLS handshakes (Envoy's listener
// ssl.handshake counter, exported only when the mesh's proxyStatsMatcher includes it).
// Pods are mapped to workloads through the pods the graph learned for each workload.
import { Graph } from "../model/graph.js";
import { PrometheusSource } from "../sources/prometheus.js";
import type { Usage } from "./resources.js";

// rate() divides by its whole range, so it needs a series older than the range (Prometheus
// extrapolation stops at the series' first sample): 5m against the kubelet's scrape interval.
const CPU = (w: string, step: string, r: string) =>
  `max by (namespace, pod) (quantile_over_time(0.95, rate(container_cpu_usage_seconds_total{container="istio-proxy"}[${r}])[${w}:${step}]))`;
const MEM = (w: string) =>
  `max by (namespace, pod) (max_over_time(container_memory_working_set_bytes{container="istio-proxy"}[${w}]))`;
const TLS = (r: string) => `sum by (namespace, pod) (rate(envoy_listener_ssl_handshake[${r}]))`;

export async function proxyUsage(
  url: string,
  graph: Graph,
  window = "1d",
  step = "1m",
  rateRange = "5m",
): Promise<{ usage: Map<string, Usage>; handshakes: Map<string, number>; unmatched: number }> {
  const prom = new PrometheusSource(
    url,
    new Graph(),
    () => {},
    () => {},
  );
  const byPod = new Map<string, string>();
  for (const n of graph.nodes.values()) for (const p of n.pods) byPod.set(`${n.namespace}/${p}`, n.key);
  const usage = new Map<string, Usage>(),
    handshakes = new Map<string, number>();
  let unmatched = 0;
  const each = async (q: string, f: (w: string, v: number) => void) => {
    for (const { metric: m, value } of (await prom.query(q)).result) {
      const w = byPod.get(`${m.namespace}/${m.pod}`);
      const v = Number(value[1]);
      if (!w || !Number.isFinite(v)) {
        unmatched++;
        continue;
      }
      f(w, v);
    }
  };
  // A workload's pods differ; size for the busiest one.
  await each(CPU(window, step, rateRange), (w, v) => {
    const u = usage.get(w) ?? { cpuCores: 0, memoryBytes: 0 };
    u.cpuCores = Math.max(u.cpuCores, v);
    usage.set(w, u);
  });
  await each(MEM(window), (w, v) => {
    const u = usage.get(w) ?? { cpuCores: 0, memoryBytes: 0 };
    u.memoryBytes = Math.max(u.memoryBytes, v);
    usage.set(w, u);
  });
  await each(TLS(rateRange), (w, v) => handshakes.set(w, Math.max(handshakes.get(w) ?? 0, v)));
  return { usage, handshakes, unmatched };
}

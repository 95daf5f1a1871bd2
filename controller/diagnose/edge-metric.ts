// meshtune_edge_time_seconds{component, client, server}: each closed window's per-request
// component times as a Prometheus histogram. A window's requests all get their edge's mean for
// that window (the split is only exact for means); at most MAX_OBS observations per edge,
// component and window keep the cost bounded (the rest is counted in _dropped).
// The labels name workloads and hosts, so this lives in its own registry, served only to
// authorised readers (/api/metrics/edges), never on the open /metrics. At most MAX_EDGES
// edges get series (4 components × 17 series each): further edges are counted, not exported.
import type { Counter, Histogram, Registry } from "prom-client";
import { edgeTimeMetrics } from "../metrics.js";
import type { DiagnoseStore } from "./store.js";
import { runDiagnose } from "./diagnose.js";

const MAX_OBS = 1000;
export const MAX_EDGES = 500;

export class EdgeTimeMetric {
  private readonly h: Histogram<"component" | "client" | "server">;
  private readonly dropped: Counter;
  private readonly edgesDropped: Counter;
  private readonly edges = new Set<string>();
  private lastWindow = -1;

  constructor(registry: Registry) {
    ({ time: this.h, dropped: this.dropped, edgesDropped: this.edgesDropped } = edgeTimeMetrics(registry, MAX_EDGES));
  }

  /** Observe the last closed window once. */
  observeWindow(store: DiagnoseStore, now = Date.now()): void {
    const end = now - (now % store.windowMs),
      start = end - store.windowMs;
    if (start === this.lastWindow) return;
    this.lastWindow = start;
    for (const d of runDiagnose(store, { fromMs: start, toMs: end - 1 })) {
      const edge = `${d.client}\n${d.server ?? d.host}`;
      if (!this.edges.has(edge)) {
        if (this.edges.size >= MAX_EDGES) {
          this.edgesDropped.inc();
          continue;
        }
        this.edges.add(edge);
      }
      const parts: [string, number | undefined][] = [
        ["client_proxy", d.components.clientProxy?.meanUs],
        ["network", d.components.network?.meanUs],
        ["server_proxy", d.components.serverProxy?.meanUs],
        ["app", d.components.app?.meanUs],
      ];
      for (const [component, us] of parts) {
        if (us === undefined) continue;
        const n = Math.min(d.requests, MAX_OBS);
        if (d.requests > n) this.dropped.inc(d.requests - n);
        const labels = { component, client: d.client, server: d.server ?? d.host };
        for (let i = 0; i < n; i++) this.h.observe(labels, us / 1e6);
      }
    }
  }
}

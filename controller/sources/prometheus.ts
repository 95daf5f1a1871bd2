// Optional source: learn edges from Istio's standard metrics through the Prometheus HTTP API
// (istio_requests_total for HTTP/gRPC, istio_tcp_connections_opened_total for TCP), as
// reported by the client side. Series with unknown source/destination are skipped and counted.
import { type Graph, emptyStats } from "../model/graph.js";
import type { Logger } from "../log.js";

const BY = "source_workload, source_workload_namespace, destination_service, destination_service_name";
export const QUERIES = [
  { proto: "HTTP", q: (w: string) => `sum by (${BY}) (increase(istio_requests_total{reporter="source"}[${w}]))` },
  {
    proto: "TCP",
    q: (w: string) => `sum by (${BY}) (increase(istio_tcp_connections_opened_total{reporter="source"}[${w}]))`,
  },
];
const NOT_SERVICES = new Set(["PassthroughCluster", "BlackHoleCluster", "unknown", ""]);

interface PromVector {
  status: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

export class PrometheusSource {
  skipped = 0;
  constructor(
    private readonly baseUrl: string,
    private readonly graph: Graph,
    private readonly touched: (ns: string, workload: string) => void,
    private readonly log: Logger,
    private readonly window = "1h",
    private readonly now: () => number = Date.now,
  ) {}

  async query(q: string): Promise<PromVector["data"] & object> {
    const url = `${this.baseUrl.replace(/\/$/, "")}/api/v1/query?query=${encodeURIComponent(q)}`;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    } catch (e) {
      throw new Error(`prometheus ${this.baseUrl}: ${(e as Error).message}`, { cause: e });
    }
    let body: PromVector;
    try {
      body = (await res.json()) as PromVector;
    } catch {
      throw new Error(`prometheus ${this.baseUrl}: HTTP ${res.status}, not a JSON API response`);
    }
    if (body.status !== "success" || !body.data)
      throw new Error(`prometheus ${this.baseUrl}: ${body.error ?? `HTTP ${res.status}`}`);
    if (body.data.resultType !== "vector")
      throw new Error(`prometheus ${this.baseUrl}: expected a vector, got ${body.data.resultType}`);
    return body.data;
  }

  /** One poll: returns the number of edges learned or refreshed. */
  async poll(): Promise<number> {
    let n = 0;
    const at = this.now();
    for (const { proto, q } of QUERIES) {
      const data = await this.query(q(this.window));
      for (const { metric: m, value } of data.result) {
        const count = Math.round(Number(value[1]));
        const ns = m.source_workload_namespace,
          w = m.source_workload,
          host = m.destination_service;
        if (
          !(count > 0) ||
          !ns ||
          !w ||
          ns === "unknown" ||
          w === "unknown" ||
          NOT_SERVICES.has(m.destination_service_name ?? "") ||
          NOT_SERVICES.has(host ?? "")
        ) {
          this.skipped++;
          continue;
        }
        const node = this.graph.node(ns, w);
        if (!node) continue;
        const s = emptyStats(at);
        s.count = count;
        // No port in these series: port 0 marks "any"; the Sidecar host needs only the name.
        this.graph.addEdge(node, { dir: "outbound", cluster: `outbound|0||${host}`, authority: "", proto }, s);
        this.touched(ns, w);
        n++;
      }
    }
    this.log("info", "prometheus poll", { edges: n, skipped: this.skipped });
    return n;
  }
}

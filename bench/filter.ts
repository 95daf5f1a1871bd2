// make bench (filter + collector):
//  - Wasm time per request of the meshtune filter vs a no-op filter on the same runtime, same host
//  - module size
//  - collector ingest rate of 50-edge reports, against JSON.parse alone on the same bodies
import { statSync } from "node:fs";
import { request, FILTER_WASM, NOOP_WASM, PRODUCTPAGE } from "../test/helpers/filter.js";
import { HostBuilder } from "../test/proxywasm/host.js";
import { Collector } from "../controller/collector/server.js";
import { Graph } from "../controller/model/graph.js";
import { report } from "../test/fixtures/report.js";

/** Wasm time per request (ns) and host get_property calls per request. */
function perRequest(wasm: string, n: number, config: object): [number, number] {
  // Envoy's default wasm log level is info: the runtime's debug lines are dropped by the host.
  const h = new HostBuilder()
    .wasmFile(wasm)
    .nodeMetadata(PRODUCTPAGE)
    .pluginConfig({ maxEdges: 1000, ...config })
    .logLevel("info")
    .build();
  h.start();
  // Every attribute a proxied request has in Envoy (sizes, method, backend_latency included).
  const reqs = Array.from({ length: 20 }, (_, i) =>
    request(`outbound|9080||svc-${i}.bookinfo.svc.cluster.local`, { host: `svc-${i}:9080`, ms: 1 + i }),
  );
  for (let i = 0; i < 5000; i++) h.http(reqs[i % 20]); // warm up
  const calls0 = h.calls.get("proxy_get_property") ?? 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) h.http(reqs[i % 20]);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  return [ns, ((h.calls.get("proxy_get_property") ?? 0) - calls0) / n];
}

const N = 200_000;
const variants: [string, string, object][] = [
  ["no-op filter", NOOP_WASM, {}],
  ["timings off (v1)", FILTER_WASM, { timings: false }],
  ["meshtune (v2)", FILTER_WASM, {}],
];
const runs: [number, number][][] = variants.map(() => []);
for (let r = 0; r < 5; r++) variants.forEach(([, wasm, cfg], i) => runs[i].push(perRequest(wasm, N, cfg)));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs: number[]) => ((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 100;
const [noop, v1, v2] = runs.map((rs) => median(rs.map((x) => x[0])));
console.log(
  `filter bench: ${N.toLocaleString()} requests x 5 interleaved rounds (median, spread), full stream lifecycle through the JS proxy-wasm host`,
);
variants.forEach(([name], i) => {
  const ns = runs[i].map((x) => x[0]);
  console.log(
    `  ${name.padEnd(17)}: ${(median(ns) / 1000).toFixed(2)} µs/request (±${spread(ns).toFixed(0)}%)   get_property ${runs[i][0][1].toFixed(1)}/request`,
  );
});
console.log(
  `  extra over no-op: v1 ${((v1 - noop) / 1000).toFixed(2)} µs, v2 ${((v2 - noop) / 1000).toFixed(2)} µs   v2/v1 extra ${((v2 - noop) / (v1 - noop)).toFixed(2)}x (target <= 1.5x)`,
);
const size = statSync(FILTER_WASM).size;
console.log(
  `  module size   : ${(size / 1024).toFixed(1)} KB (target <= 64 KB), no-op ${(statSync(NOOP_WASM).size / 1024).toFixed(1)} KB`,
);

const edges = Array.from({ length: 50 }, (_, i) => ({
  ...report().edges[0],
  cluster: `outbound|9080||svc-${i}.ns-${i % 5}.svc.cluster.local`,
}));
const bodies = Array.from({ length: 200 }, (_, i) =>
  JSON.stringify(report({ proxy: { workload: `w-${i % 100}`, namespace: `ns-${i % 7}` }, edges })),
);
const col = new Collector(new Graph());
const M = 40_000;
let t0 = process.hrtime.bigint();
for (let i = 0; i < M; i++) JSON.parse(bodies[i % 200]);
const parseSec = Number(process.hrtime.bigint() - t0) / 1e9;
t0 = process.hrtime.bigint();
for (let i = 0; i < M; i++) if (col.ingest(bodies[i % 200])) throw new Error("rejected");
const ingestSec = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(`collector ingest: 50-edge reports of ${(bodies[0].length / 1024).toFixed(1)} KB`);
console.log(`  baseline JSON.parse : ${Math.round(M / parseSec).toLocaleString()} reports/s`);
console.log(
  `  validate + merge    : ${Math.round(M / ingestSec).toLocaleString()} reports/s (target >= 20,000)   ratio to parse ${(ingestSec / parseSec).toFixed(2)}x`,
);

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

function perRequestNs(wasm: string, n: number): number {
  // Envoy's default wasm log level is info: the runtime's debug lines are dropped by the host.
  const h = new HostBuilder().wasmFile(wasm).nodeMetadata(PRODUCTPAGE).pluginConfig({ maxEdges: 1000 }).logLevel("info").build();
  h.start();
  const reqs = Array.from({ length: 20 }, (_, i) => request(`outbound|9080||svc-${i}.bookinfo.svc.cluster.local`, { host: `svc-${i}:9080`, ms: 1 + i }));
  for (let i = 0; i < 5000; i++) h.http(reqs[i % 20]); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) h.http(reqs[i % 20]);
  return Number(process.hrtime.bigint() - t0) / n;
}

const N = 200_000;
const rounds: [number, number][] = [];
for (let r = 0; r < 5; r++) rounds.push([perRequestNs(NOOP_WASM, N), perRequestNs(FILTER_WASM, N)]);
const noop = Math.min(...rounds.map((x) => x[0])), mt = Math.min(...rounds.map((x) => x[1]));
console.log(`filter bench: ${N.toLocaleString()} requests x 5 interleaved rounds (best), full stream lifecycle through the JS proxy-wasm host`);
console.log(`  no-op filter  : ${(noop / 1000).toFixed(2)} µs/request`);
console.log(`  meshtune      : ${(mt / 1000).toFixed(2)} µs/request   extra ${((mt - noop) / 1000).toFixed(2)} µs (target <= 1 µs)   ratio ${(mt / noop).toFixed(2)}x`);
const size = statSync(FILTER_WASM).size;
console.log(`  module size   : ${(size / 1024).toFixed(1)} KB (target <= 64 KB), no-op ${(statSync(NOOP_WASM).size / 1024).toFixed(1)} KB`);

const edges = Array.from({ length: 50 }, (_, i) => ({ ...report().edges[0], cluster: `outbound|9080||svc-${i}.ns-${i % 5}.svc.cluster.local` }));
const bodies = Array.from({ length: 200 }, (_, i) => JSON.stringify(report({ proxy: { workload: `w-${i % 100}`, namespace: `ns-${i % 7}` }, edges })));
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
console.log(`  validate + merge    : ${Math.round(M / ingestSec).toLocaleString()} reports/s (target >= 20,000)   ratio to parse ${(ingestSec / parseSec).toFixed(2)}x`);

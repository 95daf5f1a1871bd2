// Collector ingest: reports/s through the full check (schema, content validation, identity
// binding, exportTo, merge) against JSON.parse alone, measured in the same run, variants
// interleaved round by round (5 rounds; median and spread). Then peak RSS under a flood of
// 400 reports × 5000 unique edges, against the controller manifest's 512Mi limit (run with
// --max-old-space-size=320, the NODE_OPTIONS the manifest sets).
import { Registry } from "prom-client";
import { Collector } from "../controller/collector/server.js";
import { Graph } from "../controller/model/graph.js";
import { HostIndex } from "../controller/istio/hosts.js";
import type { Caller } from "../controller/collector/caller.js";

const caller: Caller = {
  namespace: "bookinfo",
  serviceAccount: "bookinfo-reviews",
  user: { username: "system:serviceaccount:bookinfo:bookinfo-reviews", groups: [] },
  via: "mesh",
};
const index = new HostIndex(
  Array.from({ length: 500 }, (_, i) => ({
    namespace: "bookinfo",
    host: `svc-${i}.bookinfo.svc.cluster.local`,
    vip: true,
    ports: [],
    endpoints: 3,
    exportTo: [],
  })),
);
const body = (edges: number, tag = "") =>
  JSON.stringify({
    v: 1,
    proxy: { workload: "reviews-v2", namespace: "bookinfo", pod: "reviews-v2-7bf8c9648f-2lcgn" },
    window: { startMs: 1, endMs: 2 },
    edges: Array.from({ length: edges }, (_, i) => ({
      dir: "outbound",
      cluster: `outbound|9080||svc-${tag}${i}.bookinfo.svc.cluster.local`,
      authority: `svc-${i}:9080`,
      count: 10,
      err5xx: 0,
      latency: { bounds: "meshtune-v1", buckets: [0, 0, 1, 5, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], sumUs: 9000 },
    })),
  });
const typical = body(20);
const N = 20_000;

function ingestRate(): number {
  const c = new Collector(new Graph(), new Registry(), { auth: null, bind: () => null, index: () => index });
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const r = c.ingest(typical, caller);
    if (r) throw new Error(r.join(" "));
  }
  return N / (Number(process.hrtime.bigint() - t) / 1e9);
}
function parseRate(): number {
  const t = process.hrtime.bigint();
  let s = 0;
  for (let i = 0; i < N; i++) s += (JSON.parse(typical) as { edges: unknown[] }).edges.length;
  if (s !== N * 20) throw new Error("parse");
  return N / (Number(process.hrtime.bigint() - t) / 1e9);
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const full: number[] = [],
  parse: number[] = [];
for (let round = 0; round < 5; round++) {
  full.push(ingestRate());
  parse.push(parseRate());
}
const ratio = full.map((f, i) => f / parse[i]);
console.log(
  `collector ingest (20-edge reports, checks + merge): median ${med(full).toFixed(0)} reports/s [${Math.min(...full).toFixed(0)}–${Math.max(...full).toFixed(0)}]`,
);
console.log(
  `JSON.parse alone:                                   median ${med(parse).toFixed(0)} reports/s [${Math.min(...parse).toFixed(0)}–${Math.max(...parse).toFixed(0)}]`,
);
console.log(
  `ratio full/parse: median ${med(ratio).toFixed(2)} [${Math.min(...ratio).toFixed(2)}–${Math.max(...ratio).toFixed(2)}] over 5 interleaved rounds`,
);

// Flood: 400 reports of 5000 unique edges each (2M edges offered), default caps.
const g = new Graph();
const c = new Collector(g, new Registry(), { auth: null });
let peak = process.memoryUsage().rss,
  refused = 0;
for (let r = 0; r < 400; r++) {
  const b = body(5000, `r${r}-`)
    .replace('"workload":"reviews-v2"', `"workload":"w${r % 50}"`)
    .replace('"pod":"reviews-v2-7bf8c9648f-2lcgn"', `"pod":"p${r}"`);
  if (c.ingest(b)) refused++;
  if (r % 20 === 0) peak = Math.max(peak, process.memoryUsage().rss);
}
peak = Math.max(peak, process.memoryUsage().rss);
console.log(
  `flood 400×5000 unique edges: graph holds ${g.size} edges (cap ${g.limits.maxEdgesTotal}), ${refused} reports answered 507; peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB vs 512 MiB limit: ${peak < 512 * 2 ** 20 ? "OK" : "OVER"}`,
);

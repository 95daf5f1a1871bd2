import { test } from "uvu";
import * as assert from "uvu/assert";
import type { AddressInfo } from "node:net";
import { request as httpRequest } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Collector } from "../controller/collector/server.js";
import { Graph } from "../controller/model/graph.js";
import { report } from "./fixtures/report.js";
import { meshtune } from "./helpers/cli.js";

const graph = new Graph();
const col = new Collector(graph, undefined, { auth: null, now: () => 1795168810000 });
const server = await col.listen(0, "127.0.0.1");
const port = (server.address() as AddressInfo).port;

function post(
  body: string | Buffer,
  headers: Record<string, string> = { "content-type": "application/json" },
  method = "POST",
  chunked = false,
) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/v1/reports",
        method,
        headers: chunked ? headers : { ...headers, "content-length": String(Buffer.byteLength(body)) },
      },
      (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode!, text }));
      },
    );
    req.on("error", reject);
    if (chunked) {
      const b = Buffer.from(body);
      for (let i = 0; i < b.length; i += 65536) req.write(b.subarray(i, i + 65536));
      req.end();
    } else req.end(body);
  });
}

const snapshot = () =>
  JSON.stringify([...graph.nodes.values()].map((n) => [n.key, [...n.edges.values()], [...n.unknown.values()]]));

test("valid report: 202, merged into the graph, counted", async () => {
  const r = await post(JSON.stringify(report()));
  assert.is(r.status, 202);
  const n = graph.nodes.get("bookinfo/reviews-v2")!;
  const e = [...n.edges.values()][0];
  assert.equal([e.count, e.err5xx, e.buckets[4], e.lastSeenMs], [120, 2, 100, 1795168810000]);
  assert.is([...n.unknown.values()][0].dst, "203.0.113.7:80");
  await post(JSON.stringify(report()));
  assert.is([...n.edges.values()][0].count, 240, "histograms and counts merge");
});

test("hostile and bad reports: 4xx with a one-line reason; graph untouched", async () => {
  const before = snapshot();
  const cases: [string | Buffer, number, RegExp, Record<string, string>?, boolean?][] = [
    [JSON.stringify(report({ v: 3 })), 400, /^version: unsupported report version 3 \(want 1 or 2\)\n$/],
    [
      JSON.stringify(report({ edges: [{ dir: "sideways", cluster: "x", count: 1 }] })),
      400,
      /^schema: \/edges\/0\/dir /,
    ],
    [
      JSON.stringify(report({ edges: [{ dir: "outbound", cluster: "x", count: "12" }] })),
      400,
      /^schema: \/edges\/0\/count must be integer/,
    ],
    [JSON.stringify(report({ edges: [{ dir: "outbound", cluster: "x", count: -1 }] })), 400, /^schema: /],
    [
      JSON.stringify(report({ proxy: { workload: "../etc", namespace: "bookinfo" } })),
      400,
      /^schema: \/proxy\/workload must match/,
    ],
    [
      JSON.stringify(
        report({ edges: [{ dir: "outbound", cluster: "x", count: 1, latency: { bounds: "other", buckets: [1] } }] }),
      ),
      400,
      /^schema: /,
    ],
    [JSON.stringify(report()).slice(0, 100), 400, /^malformed-json: /],
    [Buffer.alloc(2 << 20, 0x20), 413, /^oversize: report of \d+ bytes exceeds 1048576/],
    [
      Buffer.from("[" + "1,".repeat(1 << 20) + "1]"),
      413,
      /^oversize: report exceeds 1048576 bytes/,
      { "content-type": "application/json" },
      true,
    ],
    [JSON.stringify(report()), 415, /^content-type: /, { "content-type": "text/plain" }],
  ];
  for (const [body, status, re, headers, chunked] of cases) {
    const r = await post(body, headers, "POST", chunked);
    assert.is(r.status, status, `${r.text}`);
    assert.match(r.text, re);
    assert.is(r.text.trim().split("\n").length, 1);
  }
  const g = await post("", {}, "GET");
  assert.is(g.status, 405);
  assert.is(snapshot(), before, "graph unchanged by rejected reports");
});

test("too many edges is rejected by the schema, not merged", async () => {
  const edges = Array.from({ length: 5001 }, (_, i) => ({
    dir: "outbound",
    cluster: `outbound|80||s${i}.x.svc.cluster.local`,
    count: 1,
  }));
  const r = await post(JSON.stringify(report({ edges })));
  assert.is(r.status, 400);
  assert.match(r.text, /must NOT have more than 5000 items/);
});

test("/metrics exposes received and rejected-by-reason counters", async () => {
  const text = await new Promise<string>((resolve) =>
    httpRequest({ host: "127.0.0.1", port, path: "/metrics" }, (res) => {
      let t = "";
      res.on("data", (d) => (t += d));
      res.on("end", () => resolve(t));
    }).end(),
  );
  assert.match(text, /meshtune_reports_received_total 2/);
  assert.match(text, /meshtune_reports_rejected_total\{reason="oversize"\} 2/);
  assert.match(text, /meshtune_reports_rejected_total\{reason="version"\} 1/);
  assert.match(text, /meshtune_reports_rejected_total\{reason="schema"\} 6/);
});

test("recommend --reports DIR reads saved reports; bad ones are skipped with a line each", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-reports-"));
  writeFileSync(join(dir, "a.json"), JSON.stringify(report()));
  writeFileSync(join(dir, "b.json"), JSON.stringify(report({ v: 9 })));
  writeFileSync(join(dir, "c.json"), "{trunc");
  const r = meshtune(["recommend", "--reports", dir, "-o", "json"]);
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).items[0].spec.egress[0].hosts, [
    "bookinfo/ratings.bookinfo.svc.cluster.local",
    "istio-system/*",
    "meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local",
  ]);
  assert.match(r.stderr, /b\.json: unsupported report version 9/);
  assert.match(r.stderr, /c\.json: .*JSON/);
  assert.match(r.stderr, /skipped: version 1, malformed-json 1/);
});

test.after(() => {
  server.close();
});
test.run();

// The Prometheus source against a real Prometheus server (Debian's prometheus, on loopback),
// scraping a fixture exporter that serves Istio's standard metrics.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Counter, Registry } from "prom-client";
import { PrometheusSource } from "../controller/sources/prometheus.js";
import { Graph } from "../controller/model/graph.js";
import { generateSidecars, DEFAULT_GENERATE } from "../controller/sidecar/generate.js";

async function rejects(f: () => Promise<unknown>, re: RegExp) {
  try { await f(); } catch (e) { assert.match((e as Error).message, re); return; }
  assert.unreachable("expected a rejection");
}

const hasProm = spawnSync("prometheus", ["--version"]).status === 0;
if (!hasProm && process.env.CI === "true") test("prometheus installed on CI", () => assert.unreachable("prometheus not found"));

if (hasProm) {
  const reg = new Registry();
  const req = new Counter({ name: "istio_requests_total", help: "x", labelNames: ["reporter", "source_workload", "source_workload_namespace", "destination_service", "destination_service_name", "response_code"], registers: [reg] });
  const tcp = new Counter({ name: "istio_tcp_connections_opened_total", help: "x", labelNames: ["reporter", "source_workload", "source_workload_namespace", "destination_service", "destination_service_name"], registers: [reg] });
  const bump = () => {
    req.inc({ reporter: "source", source_workload: "productpage-v1", source_workload_namespace: "bookinfo", destination_service: "reviews.bookinfo.svc.cluster.local", destination_service_name: "reviews", response_code: "200" }, 10);
    req.inc({ reporter: "source", source_workload: "reviews-v2", source_workload_namespace: "bookinfo", destination_service: "ratings.bookinfo.svc.cluster.local", destination_service_name: "ratings", response_code: "200" }, 5);
    req.inc({ reporter: "destination", source_workload: "productpage-v1", source_workload_namespace: "bookinfo", destination_service: "details.bookinfo.svc.cluster.local", destination_service_name: "details", response_code: "200" }, 5);
    req.inc({ reporter: "source", source_workload: "unknown", source_workload_namespace: "unknown", destination_service: "productpage.bookinfo.svc.cluster.local", destination_service_name: "productpage", response_code: "200" }, 5);
    req.inc({ reporter: "source", source_workload: "details-v1", source_workload_namespace: "bookinfo", destination_service: "142.250.74.10", destination_service_name: "PassthroughCluster", response_code: "200" }, 1);
    tcp.inc({ reporter: "source", source_workload: "ratings-v1", source_workload_namespace: "bookinfo", destination_service: "mongodb.bookinfo.svc.cluster.local", destination_service_name: "mongodb" }, 2);
  };
  let exporter: Server, prom: ChildProcess, dir: string, promPort: number;

  test.before(async () => {
    bump();
    exporter = createServer(async (_q, res) => { bump(); res.writeHead(200, { "content-type": reg.contentType }).end(await reg.metrics()); });
    await new Promise<void>((r) => exporter.listen(0, "127.0.0.1", r));
    const ep = (exporter.address() as AddressInfo).port;
    dir = mkdtempSync(join(tmpdir(), "meshtune-prom-"));
    writeFileSync(join(dir, "prometheus.yml"), `global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: istio\n    static_configs: [{targets: ["127.0.0.1:${ep}"]}]\n`);
    promPort = 19700 + Math.floor(Math.random() * 200);
    prom = spawn("prometheus", [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: "ignore" });
    // Ready and holding at least three scrapes (increase() needs two points).
    for (let i = 0; i < 150; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=count_over_time(istio_requests_total[1m])`);
        const j = (await r.json()) as { data?: { result?: { value: [number, string] }[] } };
        if (Number(j.data?.result?.[0]?.value?.[1] ?? 0) >= 3) return;
      } catch { /* starting */ }
    }
    throw new Error("prometheus did not become ready with data");
  });

  test.after(() => { prom?.kill("SIGKILL"); exporter?.close(); if (dir) rmSync(dir, { recursive: true, force: true }); });

  test("learns client-side edges (HTTP and TCP) and skips unknown/passthrough series", async () => {
    const g = new Graph();
    const touched: string[] = [];
    const src = new PrometheusSource(`http://127.0.0.1:${promPort}`, g, (ns, w) => touched.push(`${ns}/${w}`), () => {}, "1m");
    const n = await src.poll();
    assert.is(n, 3);
    assert.is(src.skipped, 2, "unknown source and PassthroughCluster");
    assert.equal([...g.nodes.keys()].sort(), ["bookinfo/productpage-v1", "bookinfo/ratings-v1", "bookinfo/reviews-v2"]);
    assert.ok([...g.nodes.get("bookinfo/productpage-v1")!.edges.values()][0].count > 0);
    const hosts = Object.fromEntries(generateSidecars(g, DEFAULT_GENERATE).sidecars.map((s) => [s.metadata.name, s.spec.egress[0].hosts]));
    assert.equal(hosts["productpage-v1"], ["bookinfo/reviews.bookinfo.svc.cluster.local", "istio-system/*", "meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local"], "destination-reported series ignored");
    assert.equal(hosts["ratings-v1"], ["bookinfo/mongodb.bookinfo.svc.cluster.local", "istio-system/*", "meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local"]);
    assert.equal(touched.sort(), ["bookinfo/productpage-v1", "bookinfo/ratings-v1", "bookinfo/reviews-v2"]);
  });

  test("a bad query or an unreachable server is one clear error, graph untouched", async () => {
    const g = new Graph();
    const src = new PrometheusSource(`http://127.0.0.1:${promPort}`, g, () => {}, () => {}, "not-a-duration");
    await rejects(() => src.poll(), /prometheus http:\/\/127\.0\.0\.1:\d+: .*(parse|duration|invalid)/i);
    const down = new PrometheusSource("http://127.0.0.1:9", g, () => {}, () => {});
    await rejects(() => down.poll(), /prometheus http:\/\/127\.0\.0\.1:9: /);
    assert.is(g.nodes.size, 0);
  });
} else console.log("prometheus-source: skipped (prometheus not installed); under CI=true this fails");

test.run();

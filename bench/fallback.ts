// The fallback's cost for a request to a destination the caller's Sidecar does not list yet:
// latency (p50/p99 of sequential keep-alive requests) and throughput (16 concurrent clients)
// through `meshtune fallback` against a direct request to the same upstream, in the same run.
// Upstream and fallback are separate processes pinned to CPU 1 (taskset), the client to CPU 0;
// variants interleave round by round, 5 rounds, median and spread printed. A third variant, a
// bare Node http proxy with the same kept-alive upstream pool and no checks at all, is the floor
// any forwarder on Node's http stack sharing the upstream's CPU can reach. What this leaves out:
// the sidecars on both sides of the fallback hop (mTLS, Envoy), which a real hop adds too.
import { spawn, type ChildProcess } from "node:child_process";
import { Agent, request } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";

const CLI = join(process.cwd(), "build", "meshtune.mjs");
// The client stands for a pod: the fallback knows callers only by their pod address (TPROXY).
const CALLER = "127.0.0.9";
const ROUNDS = 5,
  SEQ = 2000,
  PAR = 16,
  PAR_TOTAL = 8000;

const freePort = () =>
  new Promise<number>((r) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => r(p));
    });
  });
async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`not up: ${url}`);
}

function once(agent: Agent, port: number, host: string): Promise<number> {
  const t = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const rq = request(
      { host: "127.0.0.1", port, path: "/ratings/0", agent, headers: { host }, localAddress: CALLER },
      (res) => {
        res.resume();
        // Only a forwarded answer counts: a refusal (403 for an unverified caller, 503) is fast
        // and would make a ratio out of no work.
        if (res.statusCode !== 200) return reject(new Error(`${host} via port ${port}: HTTP ${res.statusCode}`));
        res.on("end", () => resolve(Number(process.hrtime.bigint() - t) / 1e3));
      },
    );
    rq.on("error", reject);
    rq.end();
  });
}

async function latency(port: number, host: string): Promise<{ p50: number; p99: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const xs: number[] = [];
  for (let i = 0; i < SEQ; i++) xs.push(await once(agent, port, host));
  agent.destroy();
  xs.sort((a, b) => a - b);
  return { p50: xs[Math.floor(xs.length * 0.5)], p99: xs[Math.floor(xs.length * 0.99)] };
}

async function throughput(port: number, host: string): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: PAR });
  let left = PAR_TOTAL;
  const t = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: PAR }, async () => {
      while (left-- > 0) await once(agent, port, host);
    }),
  );
  agent.destroy();
  return PAR_TOTAL / (Number(process.hrtime.bigint() - t) / 1e9);
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;

async function main() {
  const upPort = await freePort(),
    fbPort = await freePort(),
    metrics = await freePort(),
    floorPort = await freePort();
  const procs: ChildProcess[] = [];
  // Every server of the bench runs pinned to CPU 1; the client stays on CPU 0.
  const onCpu1 = (args: string[], stdio: "inherit" | "ignore" = "inherit") =>
    procs.push(spawn("taskset", ["-c", "1", "node", ...args], { stdio }));
  try {
    onCpu1([
      "-e",
      `require("http").createServer((q,s)=>{q.resume();s.end('{"ratings":{"reviewer1":5}}')}).listen(${upPort},"127.0.0.1")`,
    ]);
    // The floor: parse, re-serialise, pool; no caller, route, policy, header or deadline checks.
    onCpu1([
      "-e",
      `const h=require("http");const a=new h.Agent({keepAlive:true,maxSockets:32,maxFreeSockets:32});` +
        `h.createServer((q,s)=>{const u=h.request({host:"127.0.0.1",port:${upPort},method:q.method,path:q.url,headers:q.headers,agent:a},` +
        `(r)=>{s.writeHead(r.statusCode,r.headers);r.pipe(s)});q.pipe(u)}).listen(${floorPort},"127.0.0.1")`,
    ]);
    // A fixed catalog (no API server); learned edges go to a collector that is not there (the
    // reporter counts its failures off the request path).
    const cat = join(mkdtempSync(join(tmpdir(), "meshtune-bench-")), "catalog.json");
    writeFileSync(
      cat,
      JSON.stringify({
        items: [
          {
            kind: "Service",
            metadata: { name: "ratings", namespace: "bookinfo" },
            spec: { clusterIP: "10.96.0.20", selector: { app: "ratings" }, ports: [{ name: "http", port: 9080 }] },
          },
          {
            kind: "Pod",
            metadata: { name: "productpage-v1-x", namespace: "bookinfo" },
            spec: { serviceAccountName: "bookinfo-productpage" },
            status: { podIP: CALLER, podIPs: [{ ip: CALLER }] },
          },
        ],
      }),
    );
    onCpu1(
      [
        CLI,
        "fallback",
        "--port",
        String(fbPort),
        "--metrics-port",
        String(metrics),
        "--catalog",
        cat,
        "--collector",
        "http://127.0.0.1:9/v1/reports",
        "--self",
        "meshtune-system/meshtune-fallback",
        "--resolve",
        `ratings.bookinfo.svc.cluster.local:9080=127.0.0.1:${upPort}`,
      ],
      "ignore",
    );
    await waitFor(`http://127.0.0.1:${upPort}/`);
    await waitFor(`http://127.0.0.1:${floorPort}/`);
    await waitFor(`http://127.0.0.1:${metrics}/healthz`);
    const r = {
      direct: { p50: [] as number[], p99: [] as number[], rps: [] as number[] },
      fallback: { p50: [] as number[], p99: [] as number[], rps: [] as number[] },
      floor: { p50: [] as number[], p99: [] as number[], rps: [] as number[] },
    };
    // The fallback needs a caller namespace for "ratings:9080"; a fully qualified Host needs none.
    const variants: [keyof typeof r, number, string][] = [
      ["direct", upPort, "ratings:9080"],
      ["fallback", fbPort, "ratings.bookinfo.svc.cluster.local:9080"],
      ["floor", floorPort, "ratings:9080"],
    ];
    for (const [, port, host] of variants) await latency(port, host); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, port, host] of round % 2 ? [...variants].reverse() : variants) {
        const l = await latency(port, host);
        r[name].p50.push(l.p50);
        r[name].p99.push(l.p99);
        r[name].rps.push(await throughput(port, host));
      }
    }
    const ratio = (v: "fallback" | "floor", k: "p50" | "p99" | "rps") => r[v][k].map((x, i) => x / r.direct[k][i]);
    console.log(
      `fallback hop (client CPU 0; upstream + forwarder CPU 1; ${ROUNDS} interleaved rounds; ${SEQ} sequential, ${PAR_TOTAL} at concurrency ${PAR})`,
    );
    for (const v of ["fallback", "floor"] as const) {
      console.log(
        v === "fallback" ? "  via meshtune fallback:" : "  via a bare Node http proxy (the floor on Node, no checks):",
      );
      for (const k of ["p50", "p99"] as const)
        console.log(
          `    ${k}: direct ${med(r.direct[k]).toFixed(0)} µs, via ${med(r[v][k]).toFixed(0)} µs — ${med(ratio(v, k)).toFixed(2)}× (${spread(ratio(v, k))}); added ${(med(r[v][k]) - med(r.direct[k])).toFixed(0)} µs`,
        );
      console.log(
        `    throughput: direct ${med(r.direct.rps).toFixed(0)} req/s, via ${med(r[v].rps).toFixed(0)} req/s — ${med(ratio(v, "rps")).toFixed(2)}× (${spread(ratio(v, "rps"))})`,
      );
    }
  } finally {
    for (const p of procs) p.kill("SIGKILL");
  }
}
main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);

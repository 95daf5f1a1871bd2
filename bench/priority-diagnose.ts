// make bench (proxy priority, as diagnose sees it): HTTP requests from a client pod to a server
// pod whose app saturates the CPU its sidecar runs on, with the sidecar's CPU weight as the
// kubelet sets it and with meshtune's priority (controller/agent/proxy-priority.ts, the agent's
// own code, on v1 cpu container cgroups as on this hybrid host). Both "pods" are the diagnose
// fault test's (test/helpers/two-nodes.ts): meshtune's datapath captures app → proxy → peer pod,
// the proxies time each request the way Envoy's request.duration and response.backend_latency
// do, the timings go through the real Wasm filter into report v2, and `diagnose` splits each
// request into client proxy, network, server proxy and app. The server pod's app, its spinner and
// its proxy share CPU 1; the client pod runs on CPU 0. Interleaved rounds, median and spread.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CGROUP_ROOT, bpfUnavailable } from "../test/helpers/bpf.js";
import { CPU_V1, TCPSTATS, TwoNodes, diagnoseWindow } from "../test/helpers/two-nodes.js";
import { syncProxyPriority } from "../controller/agent/proxy-priority.js";
import { prioritisedPod } from "../test/fixtures/pods.js";
import { KernelSignals, dumpTcpStats } from "../controller/agent/kernel-signals.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3),
  N = Number(process.env.REQUESTS ?? 200);
const APP_ID = "0a0a0a0a0a0a",
  PROXY_ID = "0b0b0b0b0b0b";
process.env.MESHTUNE_TCPSTATS_LOADER = TCPSTATS;

// The server pod as the kubelet created it: app requests 1 CPU (cpu.shares 1024), istio-proxy 100m (102).
const serverPod = prioritisedPod({ app: APP_ID, proxy: PROXY_ID });

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const span = (xs: number[], d = 0) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`;
const pct = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

async function main() {
  const skip = bpfUnavailable();
  if (skip) throw new Error(`priority-diagnose bench needs the datapath: ${skip}`);
  if (!existsSync(join(CPU_V1, "cpu.shares"))) {
    console.log("priority-diagnose bench: no cgroup v1 cpu controller here (unified hosts: cpu.weight)");
    return;
  }
  const t = new TwoNodes();
  let spinner: ChildProcess | null = null;
  try {
    t.up();
    const appCg = join(t.cpuCg, APP_ID),
      proxyCg = join(t.cpuCg, PROXY_ID);
    mkdirSync(appCg, { recursive: true });
    mkdirSync(proxyCg, { recursive: true });
    writeFileSync(join(appCg, "cpu.shares"), "1024");
    writeFileSync(join(proxyCg, "cpu.shares"), "102");
    await t.start(t.nsB, [t.serverCg, appCg], ["app", "8080"], { ready: "ready", cpu: 1 });
    const sproxy = await t.start(t.nsB, [t.serverCg, proxyCg], ["proxy", "15006", "127.0.0.1:8080", "127.0.0.6"], {
      uid: 1337,
      ready: "ready",
      cpu: 1,
    });
    const cproxy = await t.start(t.nsA, [t.clientCg], ["proxy", "15001", `${t.ipB}:8080`], {
      uid: 1337,
      ready: "ready",
      cpu: 0,
    });
    // The app saturating its CPU: a spinner in the app container's cgroups, on the proxy's CPU.
    spinner = spawn(
      "sh",
      [
        "-c",
        `echo $$ > ${t.serverCg}/cgroup.procs && echo $$ > ${appCg}/cgroup.procs && exec taskset -c 1 sh -c "while :; do :; done"`,
      ],
      { stdio: "ignore" },
    );
    const pods = t.meshedPods();
    const kernel = new KernelSignals({ unified: CGROUP_ROOT, cpuV1: CPU_V1, proc: "/proc" }, dumpTcpStats);
    kernel.pending(pods).commit();

    type Row = {
      p50: number;
      p99: number;
      proxyMean: number;
      proxyP99: number;
      netMean: number;
      verdict: string;
    };
    const rows: Record<"kubelet" | "priority", Row[]> = { kubelet: [], priority: [] };
    for (let round = 0; round < ROUNDS; round++)
      for (const v of round % 2 ? (["priority", "kubelet"] as const) : (["kubelet", "priority"] as const)) {
        const r = syncProxyPriority({ unified: CGROUP_ROOT, cpuV1: CPU_V1 }, t.serverCg, serverPod, v === "priority");
        if (!r.proxy) throw new Error(`proxy priority not applied: ${r.why}`);
        const { done, cr, sr } = await t.exchange(cproxy, sproxy, N, {}, 0);
        // The work happened: every request through both sidecars (capture on both pods), answered.
        if (!done || cr.length !== N || sr.length !== N || cr.some((x) => x.code !== 200))
          throw new Error(`${v}: ${cr.length} client-proxy and ${sr.length} server-proxy records of ${N}`);
        // ... and under contention: the spinner still runs (it exits at once if its cgroups refuse it).
        if (spinner.exitCode !== null || spinner.signalCode !== null)
          throw new Error(`${v}: the app's spinner exited (${spinner.exitCode ?? spinner.signalCode}): no contention`);
        const k = kernel.pending(pods);
        k.commit();
        const [d] = diagnoseWindow(pods, cr, sr, k.section);
        const sp = d?.components.serverProxy;
        if (!d || !sp) throw new Error(`${v}: diagnose gave no server-proxy component: ${JSON.stringify(d)}`);
        const totals = cr.map((x) => x.totalUs);
        rows[v].push({
          p50: pct(totals, 0.5),
          p99: pct(totals, 0.99),
          proxyMean: sp.meanUs,
          proxyP99: sp.p99Us,
          netMean: d.components.network?.meanUs ?? 0,
          verdict: `${d.verdict}: ${d.rule}${d.evidence.serverPressure ? `; server pod: ${d.evidence.serverPressure}` : ""}`,
        });
        process.stderr.write(`round ${round + 1}/${ROUNDS} ${v} done\n`);
      }
    console.log(
      `proxy priority, diagnose's view: ${N} HTTP requests per run through both sidecars; the server pod's app spins on its proxy's CPU; ${ROUNDS} interleaved rounds, median [min–max]`,
    );
    for (const v of ["kubelet", "priority"] as const) {
      const x = rows[v],
        col = (f: (r: Row) => number) => `${med(x.map(f)).toFixed(0)} µs [${span(x.map(f))}]`;
      console.log(
        `  ${v.padEnd(9)} request p50 ${col((r) => r.p50)}, p99 ${col((r) => r.p99)}; diagnose: server proxy mean ${col((r) => r.proxyMean)}, p99 ${col((r) => r.proxyP99)}, network mean ${col((r) => r.netMean)}`,
      );
      console.log(`            verdict (median run): ${x[Math.floor(x.length / 2)].verdict}`);
    }
    const ratio = (f: (r: Row) => number) => rows.priority.map((r, i) => f(r) / Math.max(1, f(rows.kubelet[i])));
    const show = (f: (r: Row) => number) => `${med(ratio(f)).toFixed(2)}× [${span(ratio(f), 2)}]`;
    console.log(
      `  priority / kubelet: request p50 ${show((r) => r.p50)}, p99 ${show((r) => r.p99)}; server proxy component mean ${show((r) => r.proxyMean)}, network component mean ${show((r) => r.netMean)}`,
    );
    console.log(
      "  a starved proxy's run-queue wait comes before its own timer starts, so diagnose sees it as network time, with the server pod's run-queue wait as evidence",
    );
  } finally {
    spinner?.kill("SIGKILL");
    await t.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`priority-diagnose bench: ${(e as Error).message}`);
    process.exit(1);
  },
);

// Split each joined edge's time into components and name what is wrong, with the rule that
// decided and the kernel evidence. Components (means over the window, from each histogram's sum;
// p50/p99 from interpolated quantiles of the same histograms):
//   client proxy   = client total − client upstream   (the caller's sidecar)
//   network        = client upstream − server total   (wire + kernel, both directions)
//   server proxy   = server total − server upstream   (the callee's sidecar)
//   app            = server upstream                   (the callee's own time)
// Without the server's report, network and server proxy and app stay one "beyond the client
// proxy" share, and the verdict says so.
import { quantileInterpUs, quantileLog2Us } from "../model/histogram.js";
import type { JoinedEdge } from "./join.js";
import type { SideTiming } from "./store.js";
import type { Pressure } from "../agent/pod-pressure.js";

export type Verdict = "app" | "network" | "proxy" | "node-pressure" | "healthy" | "unknown";

export interface Budgets {
  proxyUs: number; // mean time one sidecar may add
  networkUs: number; // mean network time allowed (at least 4× the minimum RTT seen)
  appUs: number; // mean application time above which the edge counts as slow
  retransRatio: number; // retransmits per RTT sample
  throttledRatio: number; // throttled CFS periods / periods (or throttled time / window)
  psiRatio: number; // PSI "some" time / window (CPU or memory)
  runDelayRatio: number; // run-queue wait of the pod's threads / window (like PSI: share of wall time)
}
export const DEFAULT_BUDGETS: Budgets = {
  proxyUs: 5_000,
  networkUs: 5_000,
  appUs: 25_000,
  retransRatio: 0.02,
  throttledRatio: 0.1,
  psiRatio: 0.1,
  runDelayRatio: 0.1,
};

export interface Component {
  meanUs: number;
  p50Us: number;
  p99Us: number;
}
export interface Diagnosis {
  edge: string;
  client: string;
  server: string | null;
  host: string;
  port: number;
  requests: number;
  errors5xx: number;
  components: {
    clientProxy?: Component;
    network?: Component;
    serverProxy?: Component;
    app?: Component;
    beyondClientProxy?: Component;
    total: Component;
  };
  evidence: Record<string, number | string>;
  verdict: Verdict;
  rule: string;
}

const mean = (sum: number, n: number) => (n ? sum / n : 0);
const comp = (meanUs: number, p50Us: number, p99Us: number): Component => ({
  meanUs: Math.max(0, meanUs),
  p50Us: Math.max(0, p50Us),
  p99Us: Math.max(0, p99Us),
});
const totalOf = (s: SideTiming) =>
  comp(mean(s.totalSumUs, s.count), quantileInterpUs(s.total, 0.5), quantileInterpUs(s.total, 0.99));
const upOf = (s: SideTiming) =>
  comp(mean(s.upSumUs, s.upCount), quantileInterpUs(s.up, 0.5), quantileInterpUs(s.up, 0.99));
const minus = (a: Component, b: Component) => comp(a.meanUs - b.meanUs, a.p50Us - b.p50Us, a.p99Us - b.p99Us);
const pct = (x: number) => Math.round(x * 1000) / 10;

/** The pressure signals of a pod group over its window that pass their limits, strongest first. */
function pressureOf(
  p: Pressure | null,
  windowMs: number,
  b: Budgets,
  cpuOnly = false,
): { ratio: number; what: string } | null {
  if (!p) return null;
  const winUs = Math.max(1, windowMs * 1000);
  const cands: [number, number, string][] = [
    [
      p.cpuPeriods ? p.cpuThrottled / p.cpuPeriods : 0,
      b.throttledRatio,
      `CPU throttled in ${p.cpuThrottled}/${p.cpuPeriods} CFS periods (${(p.cpuThrottledUs / 1000).toFixed(0)} ms)`,
    ],
    [p.cpuSomeUs / winUs, b.psiRatio, `cpu.pressure some ${pct(p.cpuSomeUs / winUs)}% of the window`],
    [cpuOnly ? 0 : p.memSomeUs / winUs, b.psiRatio, `memory.pressure some ${pct(p.memSomeUs / winUs)}% of the window`],
    // Short absolute waits (a process start) are a large share of little runnable time: measured
    // against the window instead, as PSI does.
    [
      p.runDelayUs / winUs,
      b.runDelayRatio,
      `threads waited ${(p.runDelayUs / 1000).toFixed(0)} ms on run queues (${pct(p.runDelayUs / winUs)}% of the window)`,
    ],
    [p.oomKills && !cpuOnly ? Infinity : 0, 1, `${p.oomKills} OOM kill(s)`],
  ];
  const hits = cands.filter(([r, lim]) => r >= lim).sort((x, y) => y[0] / y[1] - x[0] / x[1]);
  return hits.length ? { ratio: hits[0][0], what: hits.map((h) => h[2]).join("; ") } : null;
}

export function diagnose(j: JoinedEdge, b: Budgets = DEFAULT_BUDGETS): Diagnosis {
  const c = j.clientSide,
    s = j.serverSide;
  const total = totalOf(c);
  const d: Diagnosis = {
    edge: `${j.client} -> ${j.server ?? j.host}`,
    client: j.client,
    server: j.server,
    host: j.host,
    port: j.port,
    requests: c.count,
    errors5xx: c.err5xx,
    components: { total },
    evidence: {},
    verdict: "unknown",
    rule: "",
  };
  const ev = d.evidence;
  const net = j.clientNet ?? j.serverNet;
  if (!c.count) {
    if (!net) {
      d.rule = "no requests in the window";
      return d;
    }
    return l4Only(d, j, net, b);
  }
  if (net && net.rttSamples) {
    ev.srttMeanUs = Math.round(net.rttSumUs / net.rttSamples);
    ev.srttP99Us = Math.round(quantileLog2Us(net.rttHist, 0.99));
    ev.minRttUs = net.rttMinUs;
    ev.rttSamples = net.rttSamples;
  }
  const retrans = (j.clientNet?.retrans ?? 0) + (j.serverNet?.retrans ?? 0);
  const samples = (j.clientNet?.rttSamples ?? 0) + (j.serverNet?.rttSamples ?? 0);
  if (j.clientNet || j.serverNet) {
    ev.retransmits = retrans;
    ev.connectFailures = j.clientNet?.connectFail ?? 0;
  }
  if (j.clientNet?.connects) ev.connectMeanUs = Math.round(j.clientNet.connectSumUs / j.clientNet.connects);
  const sp = pressureOf(j.serverPressure, j.serverWindowMs, b),
    cp = pressureOf(j.clientPressure, j.clientWindowMs, b),
    // Only CPU contention delays a proxy before its timer starts; memory pressure does not.
    spCpu = pressureOf(j.serverPressure, j.serverWindowMs, b, true);
  if (sp) ev.serverPressure = sp.what;
  if (cp) ev.clientPressure = cp.what;
  const netBudget = Math.max(b.networkUs, 4 * Number(ev.minRttUs ?? 0));
  const lossy = retrans >= 3 && retrans / Math.max(1, samples) >= b.retransRatio;
  const failing = Number(ev.connectFailures ?? 0) > 0;

  // Over-budget components, as (excess ratio, verdict, rule).
  const over: [number, Verdict, string][] = [];
  if (c.upCount) {
    const clientProxy = minus(total, upOf(c));
    d.components.clientProxy = clientProxy;
    if (clientProxy.meanUs > b.proxyUs)
      over.push([
        clientProxy.meanUs / b.proxyUs,
        cp ? "node-pressure" : "proxy",
        cp
          ? `client proxy adds ${ms(clientProxy.meanUs)} (budget ${ms(b.proxyUs)}) while the client pod is under pressure: ${cp.what}`
          : `client proxy adds ${ms(clientProxy.meanUs)} per request (budget ${ms(b.proxyUs)})`,
      ]);
    if (s && s.count && s.upCount) {
      const sTotal = totalOf(s),
        app = upOf(s);
      const network = minus(upOf(c), sTotal),
        serverProxy = minus(sTotal, app);
      Object.assign(d.components, { network, serverProxy, app });
      if (app.meanUs > b.appUs)
        over.push([
          app.meanUs / b.appUs,
          sp ? "node-pressure" : "app",
          sp
            ? `application time ${ms(app.meanUs)} (budget ${ms(b.appUs)}) while the server pod is under pressure: ${sp.what}`
            : `application time ${ms(app.meanUs)} per request exceeds ${ms(b.appUs)}; proxies and network within budget`,
        ]);
      if (serverProxy.meanUs > b.proxyUs)
        over.push([
          serverProxy.meanUs / b.proxyUs,
          sp ? "node-pressure" : "proxy",
          sp
            ? `server proxy adds ${ms(serverProxy.meanUs)} while the server pod is under pressure: ${sp.what}`
            : `server proxy adds ${ms(serverProxy.meanUs)} per request (budget ${ms(b.proxyUs)})`,
        ]);
      // A server proxy waiting for CPU has not started its own clock (Envoy's request.duration
      // begins when it reads the request), so its run-queue wait lands here, not in its share:
      // with the server pod's CPU contended the "network" time is that wait until shown otherwise.
      const rtt =
        ev.srttMeanUs !== undefined
          ? `; kernel smoothed RTT ${ms(Number(ev.srttMeanUs))} (min ${ms(Number(ev.minRttUs))})`
          : "; no kernel RTT for this edge";
      if (network.meanUs > netBudget)
        over.push(
          spCpu
            ? [
                network.meanUs / netBudget,
                "node-pressure",
                `network time ${ms(network.meanUs)} per request exceeds ${ms(netBudget)} while the server pod's CPU is contended: ${spCpu.what}; a proxy waiting for CPU has not started its timer, so its wait shows as network${rtt}`,
              ]
            : [
                network.meanUs / netBudget,
                "network",
                `network time ${ms(network.meanUs)} per request exceeds ${ms(netBudget)}${rtt}`,
              ],
        );
    } else {
      const beyond = upOf(c);
      d.components.beyondClientProxy = beyond;
      if (beyond.meanUs > b.appUs + netBudget)
        over.push([
          beyond.meanUs / (b.appUs + netBudget),
          "unknown",
          `${ms(beyond.meanUs)} beyond the client proxy, but no report from the server side splits it into network, server proxy and application`,
        ]);
    }
  }
  if (lossy || failing) {
    const why = failing
      ? `${ev.connectFailures} failed connects`
      : `${retrans} retransmits for ${samples} RTT samples (${pct(retrans / Math.max(1, samples))}%)`;
    const slowNet = over.findIndex((o) => o[1] === "network");
    // Loss decides on its own only when the network time does not already name the network.
    if (slowNet >= 0) over[slowNet][2] += `; ${why}`;
    else
      over.push([
        Math.max(2, ...over.map((o) => o[0] + 0.01)),
        "network",
        `${why}: packets are being lost between the pods` +
          (ev.srttMeanUs !== undefined ? `; smoothed RTT ${ms(Number(ev.srttMeanUs))}` : ""),
      ]);
  }
  if (!over.length) {
    // v1 reports carry no upstream time, so no component can be shown within budget: the README
    // promises "unknown" there, however fast the total looks.
    if (!c.upCount) {
      d.verdict = "unknown";
      d.rule = `${total.meanUs > b.appUs + netBudget + 2 * b.proxyUs ? "slow" : "total"} ${ms(total.meanUs)} mean, but v1 reports carry no upstream time to split it into proxies, network and application`;
      return d;
    }
    d.verdict = "healthy";
    d.rule = `every component within budget (proxies ${ms(b.proxyUs)}, network ${ms(netBudget)}, application ${ms(b.appUs)})`;
    return d;
  }
  over.sort((x, y) => y[0] - x[0]);
  [, d.verdict, d.rule] = over[0];
  return d;
}

/**
 * A client with kernel signals but no proxy timings: an ambient pod (ztunnel records no
 * per-request time) or a pod whose reports are missing. The network can still be judged from
 * the kernel (loss, failed connects, RTT against its minimum); the proxies and the application
 * cannot, and the rule says so.
 */
function l4Only(d: Diagnosis, j: JoinedEdge, net: NonNullable<JoinedEdge["clientNet"]>, b: Budgets): Diagnosis {
  const ev = d.evidence;
  const retrans = (j.clientNet?.retrans ?? 0) + (j.serverNet?.retrans ?? 0);
  const samples = (j.clientNet?.rttSamples ?? 0) + (j.serverNet?.rttSamples ?? 0);
  const fails = j.clientNet?.connectFail ?? 0;
  if (net.rttSamples) {
    ev.srttMeanUs = Math.round(net.rttSumUs / net.rttSamples);
    ev.minRttUs = net.rttMinUs;
    ev.rttSamples = net.rttSamples;
  }
  ev.retransmits = retrans;
  ev.connectFailures = fails;
  const cannot =
    "no proxy timings for this client (an ambient pod's ztunnel records none): proxies and application not split";
  const lossy = retrans >= 3 && retrans / Math.max(1, samples) >= b.retransRatio;
  if (lossy || fails) {
    d.verdict = "network";
    d.rule = `${fails ? `${fails} failed connects` : `${retrans} retransmits for ${samples} RTT samples`}: packets are being lost between the pods; ${cannot}`;
    return d;
  }
  d.verdict = "unknown";
  d.rule = `kernel view only: smoothed RTT ${ev.srttMeanUs !== undefined ? ms(Number(ev.srttMeanUs)) : "–"}, no loss; ${cannot}`;
  return d;
}

function ms(us: number): string {
  return us >= 1000 ? `${(us / 1000).toFixed(us >= 10_000 ? 0 : 1)} ms` : `${Math.round(us)} µs`;
}

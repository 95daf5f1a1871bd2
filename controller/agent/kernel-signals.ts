// Kernel signals per pod for diagnose: TCP stats per (pod, remote) from the BPF probes
// (bpf/tcpstats.bpf.c, read with `meshtune-tcpstats dump`) and the pod's cgroup pressure
// (pod-pressure.ts). Both are cumulative at the source; each agent report carries the change
// since the previous accepted report, so the collector can sum windows.
import { loaderError, runLoader } from "../commands/bpf.js";
import { type Pressure, type PressureRoots, pressureDelta, readPressure } from "./pod-pressure.js";

export const TS_SLOTS = 24; // bpf/tcpstats.h: log2 microsecond buckets

export interface TcpStat {
  pod: number;
  dir: "out" | "in";
  ip: string;
  port: number;
  rttSamples: number;
  rttSumUs: number;
  rttMinUs: number;
  rttHist: number[];
  retrans: number;
  connects: number;
  connectFail: number;
  connectSumUs: number;
  connectHist: number[];
  accepts: number;
}

/** One remote of a pod in a report: the change over the window (rttMinUs: lowest since load). */
export type RemoteSignals = Omit<TcpStat, "pod">;

export interface PodSignals {
  namespace: string;
  name: string;
  ips: string[];
  pressure: Pressure;
  remotes: RemoteSignals[];
}
export interface KernelSection {
  windowMs: number;
  endMs?: number;
  pods: PodSignals[];
}

export function loadTcpStats(cgroup: string): Record<string, unknown> {
  const r = runLoader(["load", "--cgroup", cgroup], "meshtune-tcpstats");
  if (r.code !== 0) throw loaderError(r);
  return JSON.parse(r.stdout);
}

export function dumpTcpStats(): { stats: TcpStat[]; counters: Record<string, number> } {
  const r = runLoader(["dump"], "meshtune-tcpstats");
  if (r.code !== 0) throw loaderError(r);
  return JSON.parse(r.stdout);
}

/** The additive fields of a remote's signals (rttMinUs is a minimum, the histograms are arrays). */
export const REMOTE_COUNTERS = [
  "rttSamples",
  "rttSumUs",
  "retrans",
  "connects",
  "connectFail",
  "connectSumUs",
  "accepts",
] as const;
const COUNTERS = REMOTE_COUNTERS;

function statDelta(a: TcpStat | undefined, b: TcpStat): RemoteSignals | null {
  const d: RemoteSignals = {
    dir: b.dir,
    ip: b.ip,
    port: b.port,
    rttMinUs: b.rttMinUs,
    rttSamples: 0,
    rttSumUs: 0,
    rttHist: [],
    retrans: 0,
    connects: 0,
    connectFail: 0,
    connectSumUs: 0,
    connectHist: [],
    accepts: 0,
  };
  // An LRU-evicted and re-created entry starts below what was reported: take it whole.
  const reset = !!a && COUNTERS.some((k) => b[k] < a[k]);
  const base = reset ? undefined : a;
  for (const k of COUNTERS) d[k] = b[k] - (base?.[k] ?? 0);
  d.rttHist = b.rttHist.map((v, i) => v - (base?.rttHist[i] ?? 0));
  d.connectHist = b.connectHist.map((v, i) => v - (base?.connectHist[i] ?? 0));
  return COUNTERS.some((k) => d[k] > 0) ? d : null;
}

export interface MeshedPod {
  id: number;
  namespace: string;
  name: string;
  ips: string[];
  cgroupDir: string;
}

/** Window deltas of the kernel signals, committed only once a report carrying them was accepted. */
export class KernelSignals {
  private lastStats = new Map<string, TcpStat>();
  private lastPressure = new Map<number, Pressure>();
  private lastAt = Date.now();

  constructor(
    private readonly roots: PressureRoots,
    private readonly dump: () => { stats: TcpStat[] } = dumpTcpStats,
  ) {}

  /** Signals since the last commit for the given pods; at most `maxRemotes` remotes per pod. */
  pending(pods: MeshedPod[], maxRemotes = 500): { section: KernelSection; commit: () => void } {
    const now = Date.now();
    const stats = this.dump().stats;
    const byPod = new Map<number, TcpStat[]>();
    for (const s of stats) {
      const l = byPod.get(s.pod);
      if (l) l.push(s);
      else byPod.set(s.pod, [s]);
    }
    const nextStats = new Map<string, TcpStat>(),
      nextPressure = new Map<number, Pressure>();
    const out: PodSignals[] = [];
    for (const p of pods) {
      const cur = readPressure(p.cgroupDir, this.roots);
      nextPressure.set(p.id, cur);
      const remotes: RemoteSignals[] = [];
      for (const s of byPod.get(p.id) ?? []) {
        const k = `${s.pod}|${s.dir}|${s.ip}|${s.port}`;
        const d = statDelta(this.lastStats.get(k), s);
        if (d && remotes.length >= maxRemotes) continue; // stays pending: not committed below
        nextStats.set(k, s);
        if (d) remotes.push(d);
      }
      out.push({
        namespace: p.namespace,
        name: p.name,
        ips: p.ips,
        pressure: pressureDelta(this.lastPressure.get(p.id), cur),
        remotes,
      });
    }
    return {
      section: { windowMs: now - this.lastAt, endMs: now, pods: out },
      commit: () => {
        for (const [k, v] of nextStats) this.lastStats.set(k, v);
        for (const [k, v] of nextPressure) this.lastPressure.set(k, v);
        this.lastAt = now;
      },
    };
  }

  /** Forget a released pod (its id may be reused). */
  forget(podId: number): void {
    this.lastPressure.delete(podId);
    for (const k of this.lastStats.keys()) if (k.startsWith(`${podId}|`)) this.lastStats.delete(k);
  }
}

// Windowed timings for diagnose: filter reports (both ends' per-edge histograms) and agent kernel
// sections (per pod: TCP signals per remote, cgroup pressure), summed per fixed window so
// `--since` can pick recent behaviour. Bounded like the graph: windows older than retention are
// dropped; all windows together hold at most maxKeys edges and maxKeys pods, and one reporting
// workload at most maxPerWorkload edges per window, so one identity's flood fills its own share
// only (excess counted by reason, never silent).
import { BUCKETS } from "../model/histogram.js";
import type { ReportV1 } from "../collector/report-schema.js";
import { REMOTE_COUNTERS, type KernelSection, type RemoteSignals } from "../agent/kernel-signals.js";
import { PRESSURE_KEYS, type Pressure } from "../agent/pod-pressure.js";

export interface SideTiming {
  count: number;
  err5xx: number;
  total: number[];
  totalSumUs: number;
  upCount: number;
  up: number[];
  upSumUs: number;
}

export interface EdgeTiming {
  workload: string; // "ns/name" of the reporting proxy
  dir: "outbound" | "inbound";
  cluster: string;
  authority: string;
  t: SideTiming;
}

export interface PodKernel {
  key: string; // "ns/pod"
  node: string;
  workload: string | null; // from filter reports of the same pod, when any
  ips: string[];
  pressure: Pressure;
  windowMs: number;
  remotes: Map<string, RemoteSignals>; // "dir|ip|port"
}

interface Window {
  edges: Map<string, EdgeTiming>;
  pods: Map<string, PodKernel>;
  perWorkload: Map<string, number>;
}

const zeros = () => new Array<number>(BUCKETS).fill(0);
export const emptySide = (): SideTiming => ({
  count: 0,
  err5xx: 0,
  total: zeros(),
  totalSumUs: 0,
  upCount: 0,
  up: zeros(),
  upSumUs: 0,
});

export function addSide(a: SideTiming, b: SideTiming): void {
  a.count += b.count;
  a.err5xx += b.err5xx;
  a.totalSumUs += b.totalSumUs;
  a.upCount += b.upCount;
  a.upSumUs += b.upSumUs;
  for (let i = 0; i < BUCKETS; i++) {
    a.total[i] += b.total[i];
    a.up[i] += b.up[i];
  }
}

export function addRemote(a: RemoteSignals, b: RemoteSignals): void {
  for (const k of REMOTE_COUNTERS) a[k] += b[k];
  if (b.rttMinUs && (!a.rttMinUs || b.rttMinUs < a.rttMinUs)) a.rttMinUs = b.rttMinUs;
  a.rttHist = a.rttHist.map((v, i) => v + (b.rttHist[i] ?? 0));
  a.connectHist = a.connectHist.map((v, i) => v + (b.connectHist[i] ?? 0));
}

const cloneRemote = (r: RemoteSignals): RemoteSignals => ({
  ...r,
  rttHist: [...r.rttHist],
  connectHist: [...r.connectHist],
});

/** Fold one remote into a pod's map (a copy on first sight: windows never share arrays). */
function foldRemote(into: Map<string, RemoteSignals>, r: RemoteSignals): void {
  const k = `${r.dir}|${r.ip}|${r.port}`;
  const have = into.get(k);
  if (have) addRemote(have, r);
  else into.set(k, cloneRemote(r));
}

export function addPressure(a: Pressure, b: Pressure): void {
  for (const k of PRESSURE_KEYS) a[k] = k === "threads" ? Math.max(a[k], b[k]) : a[k] + b[k];
}

export class DiagnoseStore {
  private readonly windows = new Map<number, Window>();
  private readonly podWorkload = new Map<string, string>(); // "ns/pod" -> "ns/workload"
  readonly dropped = { edges: 0, pods: 0, workloadShare: 0 };
  /** Edges and pods held in all windows together. */
  private held = { edges: 0, pods: 0 };

  constructor(
    readonly windowMs = 60_000,
    readonly retentionMs = 3_600_000,
    readonly maxKeys = 50_000,
    readonly maxPerWorkload = 1_000,
  ) {}

  private window(atMs: number): Window {
    const start = atMs - (atMs % this.windowMs);
    let w = this.windows.get(start);
    if (!w) {
      w = { edges: new Map(), pods: new Map(), perWorkload: new Map() };
      this.windows.set(start, w);
      for (const [k, old] of this.windows)
        if (k < start - this.retentionMs) {
          this.held.edges -= old.edges.size;
          this.held.pods -= old.pods.size;
          this.windows.delete(k);
        }
    }
    return w;
  }

  /** A filter report (v1 edges carry totals only; v2 adds upstream time). */
  addReport(r: ReportV1, atMs: number): void {
    const wl = `${r.proxy.namespace}/${r.proxy.workload}`;
    if (r.proxy.pod) this.remember(`${r.proxy.namespace}/${r.proxy.pod}`, wl);
    const w = this.window(atMs);
    for (const e of r.edges) {
      if (!e.latency) continue;
      const k = `${wl}|${e.dir}|${e.cluster}|${e.authority ?? ""}`;
      let cur = w.edges.get(k);
      if (!cur) {
        if (this.held.edges >= this.maxKeys) {
          this.dropped.edges++;
          continue;
        }
        const mine = w.perWorkload.get(wl) ?? 0;
        if (mine >= this.maxPerWorkload) {
          this.dropped.workloadShare++;
          continue;
        }
        w.perWorkload.set(wl, mine + 1);
        this.held.edges++;
        w.edges.set(
          k,
          (cur = { workload: wl, dir: e.dir, cluster: e.cluster, authority: e.authority ?? "", t: emptySide() }),
        );
      }
      const up = e.upstream?.buckets;
      addSide(cur.t, {
        count: e.count,
        err5xx: e.err5xx ?? 0,
        total: e.latency.buckets,
        totalSumUs: e.latency.sumUs ?? 0,
        upCount: up ? up.reduce((a, b) => a + b, 0) : 0,
        up: up ?? zeros(),
        upSumUs: e.upstream?.sumUs ?? 0,
      });
    }
  }

  /** An agent report's kernel section. */
  addKernel(node: string, k: KernelSection, atMs: number): void {
    const w = this.window(atMs);
    for (const p of k.pods) {
      const key = `${p.namespace}/${p.name}`;
      let cur = w.pods.get(key);
      if (!cur) {
        if (this.held.pods >= this.maxKeys) {
          this.dropped.pods++;
          continue;
        }
        this.held.pods++;
        cur = {
          key,
          node,
          workload: null,
          ips: p.ips,
          pressure: { ...p.pressure },
          windowMs: k.windowMs,
          remotes: new Map(),
        };
        w.pods.set(key, cur);
      } else {
        addPressure(cur.pressure, p.pressure);
        cur.windowMs += k.windowMs;
        cur.ips = p.ips;
      }
      for (const r of p.remotes) foldRemote(cur.remotes, r);
    }
  }

  /** Which workload a pod belongs to (filter reports, or the controller's pod informer). */
  remember(pod: string, workload: string): void {
    if (this.podWorkload.size >= this.maxKeys * 4 && !this.podWorkload.has(pod)) return;
    this.podWorkload.set(pod, workload);
  }

  /** Everything observed in windows overlapping [fromMs, toMs], summed. */
  /** Start times of the windows held, oldest first. */
  windowStarts(): number[] {
    return [...this.windows.keys()].sort((a, b) => a - b);
  }

  select(fromMs: number, toMs = Date.now()): { edges: EdgeTiming[]; pods: PodKernel[] } {
    const edges = new Map<string, EdgeTiming>(),
      pods = new Map<string, PodKernel>();
    for (const [start, w] of this.windows) {
      if (start + this.windowMs <= fromMs || start > toMs) continue;
      for (const [k, e] of w.edges) {
        const cur = edges.get(k);
        if (cur) addSide(cur.t, e.t);
        else {
          const t = emptySide();
          addSide(t, e.t);
          edges.set(k, { ...e, t });
        }
      }
      for (const [k, p] of w.pods) {
        let cur = pods.get(k);
        if (!cur) {
          cur = { ...p, pressure: { ...p.pressure }, remotes: new Map() };
          pods.set(k, cur);
        } else {
          addPressure(cur.pressure, p.pressure);
          cur.windowMs += p.windowMs;
        }
        for (const r of p.remotes.values()) foldRemote(cur.remotes, r);
      }
    }
    for (const p of pods.values()) p.workload = this.podWorkload.get(p.key) ?? null;
    return { edges: [...edges.values()], pods: [...pods.values()] };
  }
}

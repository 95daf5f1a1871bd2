// Node pressure felt by one pod, read from its cgroup (cumulative counters; the agent ships deltas).
//  - CPU throttling: cpu.stat nr_periods / nr_throttled / throttled_usec (cgroup v2,
//    Documentation/admin-guide/cgroup-v2.rst "cpu.stat"); on hybrid nodes, where the cpu controller
//    lives on the v1 hierarchy, cpu,cpuacct/<same path>/cpu.stat with throttled_time in ns
//    (Documentation/scheduler/sched-bwc.rst "Statistics").
//  - PSI: cpu.pressure / memory.pressure "some ... total=<us>" (Documentation/accounting/psi.rst;
//    cgroup core files on v2, present without the controller enabled).
//  - OOM kills: memory.events oom_kill (v2) or memory.oom_control oom_kill (v1).
//  - Run-queue delay: /proc/<tid>/schedstat field 2, time spent waiting on a runqueue in ns
//    (Documentation/scheduler/sched-stats.rst), summed over the pod's threads. The kernel keeps
//    it for every task (sched_info), so no sched tracepoint runs per context switch.
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { podPids } from "./pod-cgroups.js";

export interface Pressure {
  cpuPeriods: number;
  cpuThrottled: number;
  cpuThrottledUs: number;
  cpuSomeUs: number;
  memSomeUs: number;
  oomKills: number;
  runDelayUs: number;
  runUs: number; // on-CPU time of the same threads (schedstat field 1), to express delay as a share
  threads: number;
}

export const PRESSURE_KEYS: (keyof Pressure)[] = [
  "cpuPeriods",
  "cpuThrottled",
  "cpuThrottledUs",
  "cpuSomeUs",
  "memSomeUs",
  "oomKills",
  "runDelayUs",
  "runUs",
  "threads",
];

const read = (p: string): string | null => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return null;
  }
};
const field = (text: string | null, key: string): number | null => {
  const m = text && new RegExp(`(?:^|\\n)${key} (\\d+)`).exec(text);
  return m ? Number(m[1]) : null;
};
const psiSomeTotal = (text: string | null): number => Number(/some .*total=(\d+)/.exec(text ?? "")?.[1] ?? 0);

export interface PressureRoots {
  unified: string;
  cpuV1?: string;
  memoryV1?: string;
  proc: string;
}

/** Cumulative pressure of the cgroup `dir` (under roots.unified) and every cgroup below it. */
export function readPressure(dir: string, roots: PressureRoots): Pressure {
  const rel = relative(roots.unified, dir);
  let cpuStat = read(join(dir, "cpu.stat"));
  let throttledUs = field(cpuStat, "throttled_usec");
  if (field(cpuStat, "nr_periods") === null && roots.cpuV1) {
    cpuStat = read(join(roots.cpuV1, rel, "cpu.stat"));
    const ns = field(cpuStat, "throttled_time");
    throttledUs = ns === null ? null : Math.round(ns / 1000);
  }
  const oom =
    field(read(join(dir, "memory.events")), "oom_kill") ??
    (roots.memoryV1 ? field(read(join(roots.memoryV1, rel, "memory.oom_control")), "oom_kill") : null);
  const p: Pressure = {
    cpuPeriods: field(cpuStat, "nr_periods") ?? 0,
    cpuThrottled: field(cpuStat, "nr_throttled") ?? 0,
    cpuThrottledUs: throttledUs ?? 0,
    cpuSomeUs: psiSomeTotal(read(join(dir, "cpu.pressure"))),
    memSomeUs: psiSomeTotal(read(join(dir, "memory.pressure"))),
    oomKills: oom ?? 0,
    runDelayUs: 0,
    runUs: 0,
    threads: 0,
  };
  for (const pid of podPids(dir)) {
    let tids: string[];
    try {
      tids = readdirSync(join(roots.proc, String(pid), "task"));
    } catch {
      continue;
    } // exited
    for (const tid of tids) {
      const s = read(join(roots.proc, String(pid), "task", tid, "schedstat"))
        ?.trim()
        .split(" ");
      if (!s || s.length < 2) continue;
      p.runUs += Math.round(Number(s[0]) / 1000);
      p.runDelayUs += Math.round(Number(s[1]) / 1000);
      p.threads++;
    }
  }
  return p;
}

/** b - a for counters; gauges (threads) as in b. A counter that went backwards (cgroup re-created) restarts from b. */
export function pressureDelta(a: Pressure | undefined, b: Pressure): Pressure {
  const d = { ...b };
  if (!a) return d;
  for (const k of PRESSURE_KEYS) if (k !== "threads") d[k] = b[k] >= a[k] ? b[k] - a[k] : b[k];
  return d;
}

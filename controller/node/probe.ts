// The loader's feature probe (bpf/probe.c) as data: it prints every check as JSON whatever the
// outcome, and exits 1 when the datapath cannot run here.
import { runLoader } from "../commands/bpf.js";
import type { BpfProbe } from "./features.js";

export function runProbe(cgroup?: string, release?: string): BpfProbe | { error: string } {
  let r;
  try {
    r = runLoader(["probe", ...(cgroup ? ["--cgroup", cgroup] : []), ...(release ? ["--release", release] : [])]);
  } catch (e) {
    return { error: (e as Error).message };
  }
  try {
    return JSON.parse(r.stdout) as BpfProbe;
  } catch {
    return { error: (r.stderr.trim().split("\n").pop() ?? `exit ${r.code}`).replace(/^meshtune-bpf: /, "") };
  }
}

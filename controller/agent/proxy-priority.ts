// Proxy CPU priority in the kernel (opt-in): under contention inside a pod, the istio-proxy
// container gets a CPU weight above its app's, so an app that saturates its CPU cannot starve the
// proxy its own requests pass through. The weight is the container cgroup's: `cpu.weight` where
// the cpu controller is on the unified hierarchy (cgroup v2), `cpu.shares` where it is on v1
// (hybrid hosts such as this one). Weights are work-conserving: the proxy takes only the CPU it
// uses, so the app loses at most the proxy's own CPU time (and a proxy CPU limit, CFS quota, still
// caps it); nothing outside the pod changes, since the pod cgroup's own weight is untouched.
// Opt in per pod (annotation meshtune.io/proxy-priority: "true") or per namespace (label
// meshtune.io/proxy-priority=true, a pod's "false" opts out); opting out restores the weight the
// kubelet derives from the container's CPU request (kubernetes pkg/kubelet/cm
// MilliCPUToShares: shares = milliCPU × 1024 / 1000, at least 2; cgroup v2 weight from shares,
// CpuSharesToCpuWeight: 1 + ((shares − 2) × 9999) / 262142).
import type { V1Namespace, V1Pod } from "@kubernetes/client-node";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

export const PRIORITY_FACTOR = 8; // the proxy's weight: 8 × the sum of its app containers'

export function wantsPriority(pod: V1Pod, ns: V1Namespace | undefined): boolean {
  const a = pod.metadata?.annotations?.["meshtune.io/proxy-priority"];
  if (a === "false") return false;
  return a === "true" || ns?.metadata?.labels?.["meshtune.io/proxy-priority"] === "true";
}

/** The kubelet's cpu.shares for a container's CPU request (MilliCPUToShares). */
export function kubeletShares(cpuRequest: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(cpuRequest ?? "");
  if (!m) return 2;
  const milli = m[2] ? Number(m[1]) : Number(m[1]) * 1000;
  return Math.max(2, Math.floor((milli * 1024) / 1000));
}
export const sharesToWeight = (shares: number) => Math.floor(1 + ((shares - 2) * 9999) / 262142);

/** Container cgroup directory names carry the runtime's container id (cgroupfs: the id itself;
 * systemd: cri-containerd-<id>.scope, crio-<id>.scope, docker-<id>.scope). */
function containerDir(podDir: string, id: string): string | null {
  let ents;
  try {
    ents = readdirSync(podDir, { withFileTypes: true });
  } catch {
    return null;
  }
  const e = ents.find((x) => x.isDirectory() && (x.name === id || x.name.includes(`-${id}.scope`)));
  return e ? join(podDir, e.name) : null;
}

export interface CpuRoots {
  unified: string; // where pod cgroups were found (the agent's kubepods, unified hierarchy)
  cpuV1?: string; // the v1 cpu hierarchy's mount, on hybrid hosts
}
interface Knob {
  file: string;
  kind: "cpu.weight" | "cpu.shares";
}

/** The weight file of a container: v2 where the cpu controller is enabled there, else v1. */
function knobOf(roots: CpuRoots, podDir: string, id: string): Knob | null {
  const v2 = containerDir(podDir, id);
  if (v2 && existsSync(join(v2, "cpu.weight"))) return { file: join(v2, "cpu.weight"), kind: "cpu.weight" };
  if (roots.cpuV1) {
    const v1pod = join(roots.cpuV1, relative(roots.unified, podDir));
    const v1 = containerDir(v1pod, id);
    if (v1 && existsSync(join(v1, "cpu.shares"))) return { file: join(v1, "cpu.shares"), kind: "cpu.shares" };
  }
  return null;
}

export interface PriorityResult {
  applied: boolean;
  why: string;
  proxy?: { file: string; value: number };
}

/** Apply (want) or restore (!want) the proxy's weight for one pod. */
export function syncProxyPriority(roots: CpuRoots, podDir: string, pod: V1Pod, want: boolean): PriorityResult {
  const byName = new Map(
    (pod.status?.containerStatuses ?? [])
      .filter((c) => c.containerID)
      .map((c) => [c.name, c.containerID!.replace(/^[a-z-]+:\/\//, "")]),
  );
  const spec = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  const proxyId = byName.get("istio-proxy");
  if (!proxyId) return { applied: false, why: "no running istio-proxy container" };
  const proxy = knobOf(roots, podDir, proxyId);
  if (!proxy) return { applied: false, why: "istio-proxy's cgroup has neither cpu.weight (v2) nor cpu.shares (v1)" };
  const request = (name: string) => kubeletShares(spec.find((c) => c.name === name)?.resources?.requests?.cpu);
  const asKnob = (shares: number) => (proxy.kind === "cpu.weight" ? sharesToWeight(shares) : shares);
  let target: number;
  if (want) {
    // The apps' current weights (what the kubelet set), summed; the proxy gets 8× that.
    let apps = 0;
    for (const [name, id] of byName) {
      if (name === "istio-proxy") continue;
      const k = knobOf(roots, podDir, id);
      apps += k ? Number(readFileSync(k.file, "utf8").trim()) || 0 : asKnob(request(name));
    }
    const max = proxy.kind === "cpu.weight" ? 10000 : 262144;
    target = Math.min(max, Math.max(asKnob(request("istio-proxy")), PRIORITY_FACTOR * Math.max(apps, 1)));
  } else target = asKnob(request("istio-proxy"));
  const cur = Number(readFileSync(proxy.file, "utf8").trim());
  if (cur !== target) writeFileSync(proxy.file, String(target));
  return {
    applied: want,
    why: want
      ? `${proxy.kind} ${target} (${PRIORITY_FACTOR}× the app containers')`
      : `${proxy.kind} restored to ${target}`,
    proxy: { file: proxy.file, value: target },
  };
}

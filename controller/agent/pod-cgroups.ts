// Where a pod lives on this node, from the kernel's side: its cgroup directory (by pod UID, as the
// kubelet names it) and whether its proxy is listening in its network namespace.
// Kubelet names pod cgroups "pod<uid>" (cgroupfs driver: kubepods/[burstable|besteffort/]pod<uid>)
// or, with the systemd driver, "kubepods-<qos>-pod<uid with - as _>.slice" (kubernetes
// pkg/kubelet/cm/pod_container_manager_linux.go GetPodContainerName, cgroup_manager_linux.go
// ToSystemd), one or two levels below the kubepods cgroup.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export function podCgroupName(name: string, uid: string): boolean {
  return name === `pod${uid}` || name.endsWith(`-pod${uid.replace(/-/g, "_")}.slice`);
}

/** The pod's cgroup directory under root (searched 3 levels deep), or null. */
export function findPodCgroup(root: string, uid: string, depth = 3): string | null {
  let level = [root];
  for (let d = 0; d < depth && level.length; d++) {
    const next: string[] = [];
    for (const dir of level) {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        if (podCgroupName(e.name, uid)) return join(dir, e.name);
        next.push(join(dir, e.name));
      }
    }
    level = next;
  }
  return null;
}

/** The pod's processes (every container), from cgroup.procs down the tree, lazily. */
export function* podPids(dir: string): Generator<number> {
  let procs: string, ents;
  try {
    procs = readFileSync(join(dir, "cgroup.procs"), "utf8");
  } catch {
    return;
  } // the pod is going away
  for (const l of procs.split("\n")) if (l.trim()) yield Number(l);
  try {
    ents = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of ents) if (e.isDirectory()) yield* podPids(join(dir, e.name));
}

/** Some process of the pod (any container). */
export function podPid(dir: string): number | null {
  for (const p of podPids(dir)) return p;
  return null;
}

/** Is anything in the pod's network namespace listening on TCP `port`? /proc/PID/net/tcp{,6} show
 * the sockets of PID's network namespace (proc(5)); state 0A is LISTEN (include/net/tcp_states.h). */
export function listening(procRoot: string, pid: number, port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const f of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(join(procRoot, String(pid), "net", f), "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 3 && cols[3] === "0A" && cols[1].endsWith(hex)) return true;
    }
  }
  return false;
}

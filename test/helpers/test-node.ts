// TEST DOUBLE: a Kubernetes node made of kernel parts. Each "pod" is what the kubelet and the CNI
// give a real pod: its own network namespace (veth to a bridge in a node namespace we create;
// addresses only inside those namespaces) and its own cgroup below one "kubepods" cgroup, named
// as the kubelet's cgroupfs driver names it (kubepods/[burstable/]pod<uid>; kubernetes
// pkg/kubelet/cm/pod_container_manager_linux.go). Sidecar pods get lo's ::6, as istio-iptables
// adds it (tools/istio-iptables/pkg/capture/run.go). Processes start inside a pod's cgroup
// (first, because `ip netns exec` remounts /sys) and netns. Not shown here: a real kubelet, CNI
// plugin or container runtime; pods are registered with the fake API server by the test.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import { CGROUP_ROOT, LOADER, removeCgroups, sh, spawnReady } from "./bpf.js";

export interface TestPod {
  name: string;
  uid: string;
  netns: string;
  cgroup: string;
  ip4: string;
  ip6: string;
}

export class TestNode {
  readonly id = randomBytes(3).toString("hex");
  readonly root = join(CGROUP_ROOT, `meshtune-test-${this.id}`);
  readonly kubepods = join(this.root, "kubepods");
  readonly nodeNs = `mtnode-${this.id}`;
  readonly subnet = 100 + (parseInt(this.id.slice(0, 2), 16) % 100);
  readonly pods: TestPod[] = [];
  private procs: ChildProcess[] = [];

  constructor() {
    mkdirSync(this.kubepods, { recursive: true });
    this.ip("netns", "add", this.nodeNs);
    this.ip("-n", this.nodeNs, "link", "add", "br0", "type", "bridge");
    this.ip("-n", this.nodeNs, "link", "set", "br0", "up");
  }

  private ip(...a: string[]): void {
    const r = sh("ip", a);
    if (r.code !== 0) throw new Error(`ip ${a.join(" ")}: ${r.stderr.trim()}`);
  }

  /** A pod: netns + veth to the bridge + cgroup (burstable QoS one level deeper, as the kubelet does). */
  addPod(name: string, o: { qos?: "burstable" | "guaranteed"; sidecar?: boolean } = {}): TestPod {
    const k = this.pods.length + 1,
      uid = randomUUID();
    const netns = `mtp-${this.id}-${k}`,
      host = `mtv${this.id}${k}`;
    const cgroup =
      o.qos === "guaranteed" ? join(this.kubepods, `pod${uid}`) : join(this.kubepods, "burstable", `pod${uid}`);
    mkdirSync(cgroup, { recursive: true });
    const pod = {
      name,
      uid,
      netns,
      cgroup,
      ip4: `10.197.${this.subnet}.${10 + k}`,
      ip6: `fd00:197:${this.subnet.toString(16)}::${10 + k}`,
    };
    this.ip("netns", "add", netns);
    this.ip("-n", this.nodeNs, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", netns);
    this.ip("-n", this.nodeNs, "link", "set", host, "master", "br0", "up");
    this.ip("-n", netns, "addr", "add", `${pod.ip4}/24`, "dev", "eth0");
    this.ip("-n", netns, "-6", "addr", "add", `${pod.ip6}/64`, "dev", "eth0", "nodad");
    this.ip("-n", netns, "link", "set", "eth0", "up");
    this.ip("-n", netns, "link", "set", "lo", "up");
    if (o.sidecar !== false) this.ip("-n", netns, "-6", "addr", "add", "::6/128", "dev", "lo", "nodad");
    this.pods.push(pod);
    return pod;
  }

  private argv(pod: TestPod, cmd: string, args: string[], env: Record<string, string> = {}): string[] {
    const envs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    return [
      "sh",
      "-c",
      'echo $$ > "$0/cgroup.procs" && exec "$@"',
      pod.cgroup,
      "ip",
      "netns",
      "exec",
      pod.netns,
      "env",
      ...envs,
      cmd,
      ...args,
    ];
  }

  /** A long-running process in the pod; resolves when it prints `ready`. */
  async start(
    pod: TestPod,
    cmd: string,
    args: string[],
    ready = "ready",
  ): Promise<{ proc: ChildProcess; out: () => string }> {
    const [c, ...a] = this.argv(pod, cmd, args);
    const r = await spawnReady([c, ...a], ready, `${cmd} in ${pod.name}`, (p) => this.procs.push(p));
    return { proc: r.proc, out: r.out };
  }

  /** Run to completion in the pod (async, so several pods can run at once). */
  run(
    pod: TestPod,
    cmd: string,
    args: string[],
    env: Record<string, string> = {},
    timeoutMs = 60_000,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const [c, ...a] = this.argv(pod, cmd, args, env);
    return new Promise((resolve) => {
      const p = spawn(c, a, { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "",
        stderr = "";
      p.stdout.on("data", (d) => (stdout += d));
      p.stderr.on("data", (d) => (stderr += d));
      const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
      // 'close', not 'exit': at 'exit' the child's stdout may not be drained yet (Node's
      // child_process docs), and a result line read then is empty.
      p.on("close", (code) => {
        clearTimeout(t);
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });
  }

  track(p: ChildProcess): void {
    this.procs.push(p);
  }

  /** Always: unload, kill, delete namespaces, remove the cgroup tree. */
  async close(): Promise<void> {
    sh(LOADER, ["unload"]);
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    await Promise.all(
      this.procs.map((p) =>
        p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => p.once("exit", r)),
      ),
    );
    for (const p of this.pods) sh("ip", ["netns", "del", p.netns]);
    sh("ip", ["netns", "del", this.nodeNs]);
    await removeCgroups(this.root);
  }
}

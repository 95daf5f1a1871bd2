// A node for ambient-mode tests, built from parts this kernel has: a child cgroup v2 standing for
// kubepods (never the root), one child cgroup per pod plus one for ztunnel, one network
// namespace per pod joined by veth pairs to a "node" namespace that routes between them and owns
// a "remote" address outside every pod, and the ztunnel stand-in (build/mtztunnel) that opens its
// listeners inside the enrolled pods' namespaces as ztunnel's in-pod mode does. Everything is
// torn down in close(), whatever the test did: unload, kill, delete namespaces, rmdir cgroups.
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { CGROUP_ROOT, LOADER, loader, removeCgroups, sh, spawnReady } from "./bpf.js";
export { MTNET, MTPROXY } from "./bpf.js";
import { ROOT } from "./cli.js";

export const MTZTUNNEL = join(ROOT, "build", "mtztunnel");

export interface Pod {
  name: string;
  index: number; // subnet 10.<net>.<index>.0/24, fd00:<net>:<index>::/64
  uid: string; // the cgroup is pod<uid>, as the kubelet's cgroupfs driver names it
  cgroup: string;
  netns: string;
  ip4: string;
  ip6: string;
  id: number; // datapath pod id
}

export class AmbientNode {
  readonly tag = randomBytes(3).toString("hex");
  readonly net = 200 + (parseInt(this.tag.slice(0, 2), 16) % 50);
  readonly cgroup = join(CGROUP_ROOT, `meshtune-amb-${this.tag}`);
  readonly nodeNs = `mtnode-${this.tag}`;
  readonly remote4 = `10.${this.net}.99.1`;
  readonly remote6 = `fd00:${this.net}:99::1`;
  readonly dns4 = `10.${this.net}.99.53`;
  /** An address on pod b's lo: a delivery source that is not the pod's eth0 address. */
  readonly deliverySource = `10.${this.net}.200.2`;
  readonly pods = new Map<string, Pod>();
  readonly ztunnelUid = `${this.tag}-ztunnel`;
  private procs: ChildProcess[] = [];
  private links: string[] = [];
  ztunnel: { proc: ChildProcess; lines: () => string[]; err: () => string } | null = null;

  private ip(...a: string[]) {
    const r = sh("ip", a);
    if (r.code !== 0) throw new Error(`ip ${a.join(" ")}: ${r.stderr.trim()}`);
  }

  /** The node namespace (a router with the remote and DNS addresses on its lo), then the pods. */
  up(names: string[]): void {
    mkdirSync(join(this.cgroup, `pod${this.ztunnelUid}`), { recursive: true });
    this.ip("netns", "add", this.nodeNs);
    this.ip("-n", this.nodeNs, "link", "set", "lo", "up");
    for (const a of [`${this.remote4}/32`, `${this.dns4}/32`])
      this.ip("-n", this.nodeNs, "addr", "add", a, "dev", "lo");
    this.ip("-n", this.nodeNs, "-6", "addr", "add", `${this.remote6}/128`, "dev", "lo");
    sh("ip", [
      "netns",
      "exec",
      this.nodeNs,
      "sysctl",
      "-qw",
      "net.ipv4.ip_forward=1",
      "net.ipv6.conf.all.forwarding=1",
    ]);
    names.forEach((name, i) => {
      const index = i + 1;
      const uid = `${this.tag}-${name}`;
      const pod: Pod = {
        name,
        index,
        uid,
        cgroup: join(this.cgroup, `pod${uid}`),
        netns: `mtp${name}-${this.tag}`,
        ip4: `10.${this.net}.${index}.2`,
        ip6: `fd00:${this.net}:${index}::2`,
        id: 100 + index,
      };
      mkdirSync(pod.cgroup, { recursive: true });
      const host = `mta${this.tag}${index}`,
        peer = `mtb${this.tag}${index}`;
      this.ip("netns", "add", pod.netns);
      this.ip("link", "add", host, "netns", this.nodeNs, "type", "veth", "peer", "name", peer, "netns", pod.netns);
      this.links.push(host);
      this.ip("-n", this.nodeNs, "addr", "add", `10.${this.net}.${index}.1/24`, "dev", host);
      this.ip("-n", this.nodeNs, "-6", "addr", "add", `fd00:${this.net}:${index}::1/64`, "dev", host, "nodad");
      this.ip("-n", this.nodeNs, "link", "set", host, "up");
      this.ip("-n", pod.netns, "link", "set", "lo", "up");
      this.ip("-n", pod.netns, "link", "set", peer, "name", "eth0");
      this.ip("-n", pod.netns, "addr", "add", `${pod.ip4}/24`, "dev", "eth0");
      this.ip("-n", pod.netns, "-6", "addr", "add", `${pod.ip6}/64`, "dev", "eth0", "nodad");
      this.ip("-n", pod.netns, "link", "set", "eth0", "up");
      this.ip("-n", pod.netns, "route", "add", "default", "via", `10.${this.net}.${index}.1`);
      this.ip("-n", pod.netns, "-6", "route", "add", "default", "via", `fd00:${this.net}:${index}::1`);
      this.pods.set(name, pod);
    });
  }

  pod(name: string): Pod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`no pod ${name}`);
    return p;
  }

  /** Start a long-running process in a pod (its cgroup and netns), in the node netns, or in the
   * ztunnel cgroup; resolves once stdout holds `ready`. */
  async start(
    where: { pod?: string; nodeNs?: boolean; ztunnel?: boolean },
    cmd: string,
    args: string[],
    ready = "ready",
  ): Promise<{ proc: ChildProcess; out: () => string; err: () => string }> {
    let argv = [cmd, ...args];
    const pod = where.pod ? this.pod(where.pod) : null;
    if (pod) argv = ["ip", "netns", "exec", pod.netns, ...argv];
    if (where.nodeNs) argv = ["ip", "netns", "exec", this.nodeNs, ...argv];
    const cg = pod ? pod.cgroup : where.ztunnel ? join(this.cgroup, `pod${this.ztunnelUid}`) : null;
    if (cg) argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg, ...argv];
    return spawnReady(argv, ready, cmd, (p) => this.procs.push(p));
  }

  /** Run to completion inside a pod (cgroup and netns). */
  run(pod: string, cmd: string, args: string[], env: Record<string, string> = {}, timeout = 20_000) {
    const p = this.pod(pod);
    const envs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    return sh(
      "sh",
      [
        "-c",
        'echo $$ > "$0/cgroup.procs" && exec "$@"',
        p.cgroup,
        "ip",
        "netns",
        "exec",
        p.netns,
        "env",
        ...envs,
        cmd,
        ...args,
      ],
      { timeout },
    );
  }

  /** ztunnel's stand-in with listeners in these pods' namespaces (in this order: its NS index). */
  async startZtunnel(pods: string[], env: Record<string, string> = {}): Promise<number> {
    const z = await this.start({ ztunnel: true }, "env", [
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      MTZTUNNEL,
      ...pods.map((p) => `/run/netns/${this.pod(p).netns}`),
    ]);
    this.ztunnel = { proc: z.proc, lines: () => z.out().split("\n").filter(Boolean), err: z.err };
    return z.proc.pid!;
  }

  load(): void {
    const r = loader("load", "--cgroup", this.cgroup);
    if (r.code !== 0) throw new Error(`load: ${r.stderr}`);
  }

  /** The loader's pod protocol, one reply (JSON) per line. */
  pods_(...lines: string[]): Record<string, unknown>[] {
    const r = sh(LOADER, ["pods"], { input: lines.map((l) => `${l}\n`).join("") });
    return r.stdout
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }

  /** Enrol as the agent does: inbound steering (needs ztunnel ready), then outbound capture. */
  enrol(name: string, ztPid: number, o: { dns?: boolean } = {}): Record<string, unknown>[] {
    const p = this.pod(name);
    const ips = `ips=${p.ip4},${p.ip6}`;
    return this.pods_(
      `ambient ${p.id} /run/netns/${p.netns} ${ztPid} ${ips}${o.dns ? " dns=1" : ""}`,
      `set ${p.cgroup} id=${p.id} flags=${8 | (o.dns ? 16 : 0)} ${ips}`,
    );
  }

  unenrol(name: string): Record<string, unknown>[] {
    const p = this.pod(name);
    return this.pods_(`del ${p.id}`, `unambient ${p.id} ips=${p.ip4},${p.ip6}`);
  }

  async close(): Promise<void> {
    loader("unload");
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    await Promise.all(
      this.procs.map((p) =>
        p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => p.once("exit", r)),
      ),
    );
    for (const p of this.pods.values()) sh("ip", ["netns", "del", p.netns]);
    sh("ip", ["netns", "del", this.nodeNs]);
    await removeCgroups(this.cgroup);
    if (existsSync(this.cgroup)) throw new Error(`could not remove ${this.cgroup}`);
  }
}

export async function withAmbientNode(names: string[], fn: (n: AmbientNode) => Promise<void>): Promise<void> {
  const n = new AmbientNode();
  try {
    n.up(names);
    await fn(n);
  } finally {
    await n.close();
  }
}

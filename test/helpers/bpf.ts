// Root-only fixtures for the datapath tests: a child cgroup v2 (never the root) standing for the
// node's kubepods cgroup, one "pod" cgroup below it that is registered as meshed, a network
// namespace joined by a veth pair, and processes started inside the pod cgroup. Everything is
// torn down in `finally`, whatever the test did.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ROOT } from "./cli.js";

export const CGROUP_ROOT = "/sys/fs/cgroup/unified";
export const LOADER = join(ROOT, "build", "meshtune-bpf");
export const MTNET = join(ROOT, "build", "mtnet");
export const MTPROXY = join(ROOT, "build", "mtproxy");

/** Why BPF tests cannot run here, or "" when they can. Under CI=true the caller must fail, not skip. */
export function bpfUnavailable(): string {
  if (process.getuid?.() !== 0) return "not root";
  if (!existsSync(join(CGROUP_ROOT, "cgroup.controllers"))) return `no cgroup v2 at ${CGROUP_ROOT}`;
  if (!existsSync(LOADER)) return `${LOADER} not built`;
  const r = spawnSync(LOADER, ["probe"], { encoding: "utf8" });
  return r.status === 0 ? "" : r.stderr.trim();
}

export function sh(cmd: string, args: string[], opts: { timeout?: number; input?: string } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    timeout: opts.timeout ?? 120_000,
    input: opts.input,
    maxBuffer: 64 << 20,
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "", error: r.error };
}

export const bpftool = (...a: string[]) => {
  const r = sh("bpftool", a);
  if (r.code !== 0) throw new Error(`bpftool ${a.join(" ")}: ${r.stderr}`);
};

/**
 * Another sockmap user (bpf/tools/foreign-sockmap.bpf.c): its sk_msg on its own sockhash and,
 * when `sockOpsOn` names a cgroup, its sock_ops there; always detached and unpinned after `fn`.
 */
export async function withForeignSockmap(id: string, sockOpsOn: string | null, fn: () => Promise<void>): Promise<void> {
  const pin = `/sys/fs/bpf/meshtune-test-sockmap-${id}`,
    maps = `${pin}-maps`,
    msg = ["pinned", `${pin}/other_sk_msg`, "msg_verdict", "pinned", `${maps}/other_socks`];
  sh("mkdir", ["-p", maps]);
  try {
    bpftool("prog", "loadall", join(ROOT, "build", "foreign-sockmap.bpf.o"), pin, "pinmaps", maps);
    bpftool("prog", "attach", ...msg);
    if (sockOpsOn) bpftool("cgroup", "attach", sockOpsOn, "sock_ops", "pinned", `${pin}/other_sockops`, "multi");
    await fn();
  } finally {
    if (sockOpsOn) sh("bpftool", ["cgroup", "detach", sockOpsOn, "sock_ops", "pinned", `${pin}/other_sockops`]);
    sh("bpftool", ["prog", "detach", ...msg]);
    sh("rm", ["-rf", pin, maps]);
  }
}

export function loader(...args: string[]) {
  const r = sh(LOADER, args);
  return { ...r, json: r.code === 0 && r.stdout.trim() ? JSON.parse(r.stdout) : null };
}

export function counters(): Record<string, number> {
  return loader("status").json?.counters ?? {};
}

/**
 * Start a long-running process and resolve once its stdout holds `ready`; reject with its stderr
 * when it exits first or is silent for 10 s. `track` receives it at once, so a fixture's close()
 * kills it whatever happens next. The fixtures' one way to start their servers and proxies.
 */
export async function spawnReady(
  argv: string[],
  ready: string,
  label: string,
  track: (p: ChildProcess) => void,
): Promise<{ proc: ChildProcess; out: () => string; err: () => string }> {
  const proc = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  track(proc);
  let out = "",
    err = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (err += d));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${label} not ready: ${err}`)), 10_000);
    const check = () => {
      if (out.includes(ready)) {
        clearTimeout(t);
        resolve();
      }
    };
    check();
    proc.stdout!.on("data", check);
    proc.on("exit", (c) => {
      clearTimeout(t);
      reject(new Error(`${label} exited ${c}: ${err}`));
    });
  });
  return { proc, out: () => out, err: () => err };
}

export class Fixture {
  readonly id = randomBytes(3).toString("hex");
  readonly cgroup = join(CGROUP_ROOT, `meshtune-test-${this.id}`);
  readonly pod = join(this.cgroup, "pod-1");
  readonly netns = `mt-${this.id}`;
  readonly subnet = 100 + (parseInt(this.id.slice(0, 2), 16) % 100);
  readonly remote4 = `10.199.${this.subnet}.2`;
  readonly remote6 = `fd00:199:${this.subnet.toString(16)}::2`;
  private procs: ChildProcess[] = [];
  private hasNetns = false;

  constructor() {
    mkdirSync(this.pod, { recursive: true });
  }

  /** A netns holding remote4/remote6, reached over a veth pair from the root namespace. */
  netnsUp(): void {
    const h = `mth${this.id}`,
      n = `mtn${this.id}`;
    const run = (...a: string[]) => {
      const r = sh("ip", a);
      if (r.code !== 0) throw new Error(`ip ${a.join(" ")}: ${r.stderr.trim()}`);
    };
    run("netns", "add", this.netns);
    this.hasNetns = true;
    run("link", "add", h, "type", "veth", "peer", "name", n);
    run("link", "set", n, "netns", this.netns);
    run("addr", "add", `10.199.${this.subnet}.1/24`, "dev", h);
    run("-6", "addr", "add", `fd00:199:${this.subnet.toString(16)}::1/64`, "dev", h, "nodad");
    run("link", "set", h, "up");
    run("-n", this.netns, "addr", "add", `${this.remote4}/24`, "dev", n);
    run("-n", this.netns, "-6", "addr", "add", `${this.remote6}/64`, "dev", n, "nodad");
    run("-n", this.netns, "link", "set", n, "up");
    run("-n", this.netns, "link", "set", "lo", "up");
  }

  /** Start a long-running process (in the cgroup unless outside) and wait for its "ready" line. */
  async start(
    cmd: string,
    args: string[],
    o: { inCgroup?: boolean; netns?: boolean; ready?: string } = {},
  ): Promise<{ proc: ChildProcess; out: () => string }> {
    let argv = [cmd, ...args];
    if (o.netns) argv = ["ip", "netns", "exec", this.netns, ...argv];
    if (o.inCgroup !== false) argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.pod, ...argv];
    const r = await spawnReady(argv, o.ready ?? "ready", cmd, (p) => this.procs.push(p));
    return { proc: r.proc, out: r.out };
  }

  /** Run a command to completion inside the pod cgroup (or outside). */
  run(cmd: string, args: string[], o: { inCgroup?: boolean; timeout?: number } = {}) {
    if (o.inCgroup === false) return sh(cmd, args, o);
    return sh("sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.pod, cmd, ...args], o);
  }

  /** Load on the fixture cgroup and mesh its pod with Istio's defaults (capture all outbound and
   * inbound, REDIRECT mode), as the agent does for an injected pod. */
  load(...extra: string[]) {
    const r = loader("load", "--cgroup", this.cgroup, ...extra);
    if (r.code === 0) {
      const p = sh(LOADER, ["pods"], { input: `set ${this.pod} id=1 flags=7\n` });
      if (!p.stdout.includes('"ok":true')) throw new Error(`pods set: ${p.stdout}${p.stderr}`);
    }
    return r;
  }

  /** The loader's `pods` command with these lines; its stdout. */
  pods(...lines: string[]): string {
    const p = sh(LOADER, ["pods"], { input: lines.map((l) => `${l}\n`).join("") });
    return p.stdout + p.stderr;
  }

  /** Always: unload, stop processes, remove the netns and the cgroup. */
  async close(): Promise<void> {
    loader("unload");
    for (const p of this.procs) if (p.exitCode === null) p.kill("SIGKILL");
    await Promise.all(this.procs.map((p) => (p.exitCode !== null ? null : new Promise((r) => p.once("exit", r)))));
    if (this.hasNetns) {
      sh("ip", ["link", "del", `mth${this.id}`]);
      sh("ip", ["netns", "del", this.netns]);
    }
    await removeCgroups(this.cgroup);
    if (existsSync(this.cgroup))
      throw new Error(`could not remove ${this.cgroup}: ${readFileSync(join(this.cgroup, "cgroup.procs"), "utf8")}`);
  }
}

/** rmdir a cgroup tree bottom-up, waiting for killed processes to leave. */
export async function removeCgroups(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) await removeCgroups(join(dir, e.name));
  for (let i = 0; i < 50 && existsSync(dir); i++) {
    try {
      rmdirSync(dir);
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const f = new Fixture();
  try {
    await fn(f);
  } finally {
    await f.close();
  }
}

/** Wait (event loop running) until `get()` satisfies `ok`, or time out; returns the last value. */
export async function waitFor<T>(get: () => T, ok: (v: T) => boolean, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  let v = get();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    v = get();
  }
  return v;
}

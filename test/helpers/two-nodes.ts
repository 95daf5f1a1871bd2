// Two "nodes" (network namespaces joined by a veth pair) with a client and a server "pod" on
// them (own netns + own child cgroup under one test kubepods cgroup, and a v1 cpu cgroup on
// hybrid hosts), each an app plus a forwarding proxy (test/helpers/mesh-proc.mjs) captured by
// the meshtune datapath, with the kernel TCP probes attached; and the proxies' per-request
// timings through the real Wasm filter on the proxy-wasm host, as report v2. Used by the
// diagnose fault test and the proxy-priority diagnose bench. Root only; close() removes all.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { CGROUP_ROOT, LOADER, loader, removeCgroups, sh, waitFor } from "./bpf.js";
import { ROOT } from "./cli.js";
import { filterHost, request, bodyOf } from "./filter.js";
import type { MeshedPod } from "../../controller/agent/kernel-signals.js";
import { DiagnoseStore } from "../../controller/diagnose/store.js";
import { runDiagnose } from "../../controller/diagnose/diagnose.js";
import type { Diagnosis } from "../../controller/diagnose/verdict.js";

export const TCPSTATS = join(ROOT, "build", "meshtune-tcpstats");
export const MESH_PROC = join(ROOT, "test", "helpers", "mesh-proc.mjs");
export const CPU_V1 = "/sys/fs/cgroup/cpu";

export interface Proc {
  p: ChildProcess;
  out: () => string;
}

export class TwoNodes {
  readonly id = randomBytes(3).toString("hex");
  readonly kube = join(CGROUP_ROOT, `meshtune-test-${this.id}`);
  readonly clientCg = join(this.kube, "pod-client");
  readonly serverCg = join(this.kube, "pod-server");
  readonly cpuCg = join(CPU_V1, `meshtune-test-${this.id}`, "pod-server"); // hybrid node: cpu controller on v1
  readonly nsA = `mtda${this.id}`;
  readonly nsB = `mtdb${this.id}`;
  readonly subnet = 50 + (parseInt(this.id.slice(0, 2), 16) % 100);
  readonly ipA = `10.196.${this.subnet}.1`;
  readonly ipB = `10.196.${this.subnet}.2`;
  readonly vA = `mtva${this.id}`;
  readonly vB = `mtvb${this.id}`;
  private procs: ChildProcess[] = [];

  up(): void {
    mkdirSync(this.clientCg, { recursive: true });
    mkdirSync(this.serverCg, { recursive: true });
    if (existsSync(CPU_V1)) mkdirSync(this.cpuCg, { recursive: true });
    const ip = (...a: string[]) => {
      const r = sh("ip", a);
      if (r.code) throw new Error(`ip ${a.join(" ")}: ${r.stderr}`);
    };
    ip("netns", "add", this.nsA);
    ip("netns", "add", this.nsB);
    ip("link", "add", this.vA, "netns", this.nsA, "type", "veth", "peer", "name", this.vB, "netns", this.nsB);
    ip("-n", this.nsA, "addr", "add", `${this.ipA}/24`, "dev", this.vA);
    ip("-n", this.nsB, "addr", "add", `${this.ipB}/24`, "dev", this.vB);
    for (const [ns, dev] of [
      [this.nsA, this.vA],
      [this.nsB, this.vB],
    ]) {
      ip("-n", ns, "link", "set", dev, "up");
      ip("-n", ns, "link", "set", "lo", "up");
    }
    // No splice: the two "nodes" share this kernel, so the datapath would splice client proxy →
    // server proxy as same-node pods; real cross-node traffic crosses the wire (and the TCP stack).
    const l = loader("load", "--cgroup", this.kube, "--no-splice");
    if (l.code) throw new Error(`datapath load: ${l.stderr}`);
    // As the agent writes an injected pod: capture all outbound and inbound, REDIRECT mode.
    const p = sh(LOADER, ["pods"], {
      input: `set ${this.clientCg} id=1 flags=7 ips=${this.ipA}\nset ${this.serverCg} id=2 flags=7 ips=${this.ipB}\n`,
    });
    if ((p.stdout.match(/"ok":true/g) ?? []).length !== 2) throw new Error(`pods: ${p.stdout}${p.stderr}`);
    const t = sh(TCPSTATS, ["load", "--cgroup", this.kube]);
    if (t.code) throw new Error(`tcpstats load: ${t.stderr}`);
  }

  /** A process in a pod: its netns, its cgroup(s), optionally as the proxy's uid 1337. */
  async start(
    ns: string,
    cgroups: string[],
    args: string[],
    o: { uid?: number; ready?: string; cpu?: number } = {},
  ): Promise<Proc> {
    const join = cgroups.map((c) => `echo $$ > ${c}/cgroup.procs`).join(" && ");
    const user =
      o.uid !== undefined ? ["setpriv", "--reuid", String(o.uid), "--regid", String(o.uid), "--clear-groups"] : [];
    // Cgroups first: `ip netns exec` mounts a fresh /sys for the namespace (ip-netns(8)), without
    // the cgroup tree.
    const p = spawn(
      "sh",
      [
        "-c",
        `${join} && exec "$@"`,
        "sh",
        ...(o.cpu !== undefined ? ["taskset", "-c", String(o.cpu)] : []),
        "ip",
        "netns",
        "exec",
        ns,
        ...user,
        process.execPath,
        MESH_PROC,
        ...args,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.procs.push(p);
    let out = "",
      err = "";
    p.stdout!.on("data", (d) => (out += d));
    p.stderr!.on("data", (d) => (err += d));
    if (o.ready) {
      const got = await waitFor(
        () => out,
        (s) => s.includes(o.ready!),
        10_000,
      );
      if (!got.includes(o.ready)) throw new Error(`${args[0]} not ready: ${err}`);
    }
    return { p, out: () => out };
  }

  /** The two pods as the node agent registers them (kernel signals are read per pod). */
  meshedPods(): MeshedPod[] {
    return [
      { id: 1, namespace: "demo", name: "client-7d9f-abcde", ips: [this.ipA], cgroupDir: this.clientCg },
      { id: 2, namespace: "demo", name: "server-5c6b-fghij", ips: [this.ipB], cgroupDir: this.serverCg },
    ];
  }

  /** `n` requests from the client pod's app to the server pod; what each proxy recorded of them. */
  async exchange(cproxy: Proc, sproxy: Proc, n: number, headers: Record<string, string> = {}, cpu?: number) {
    const c0 = cproxy.out().length,
      s0 = sproxy.out().length;
    const client = await this.start(
      this.nsA,
      [this.clientCg],
      ["client", `http://${this.ipB}:8080/`, String(n), JSON.stringify(headers)],
      { cpu },
    );
    await new Promise((r) => client.p.once("exit", r));
    await waitFor(
      () => records(cproxy.out(), c0).length + records(sproxy.out(), s0).length,
      (k) => k >= 2 * n,
      10_000,
    );
    return { done: client.out().includes("done"), cr: records(cproxy.out(), c0), sr: records(sproxy.out(), s0) };
  }

  async close(): Promise<void> {
    loader("unload"); // the datapath and the TCP probes with it
    for (const p of this.procs) if (p.exitCode === null) p.kill("SIGKILL");
    await Promise.all(this.procs.map((p) => (p.exitCode !== null ? null : new Promise((r) => p.once("exit", r)))));
    sh("ip", ["netns", "del", this.nsA]);
    sh("ip", ["netns", "del", this.nsB]);
    await removeCgroups(this.kube);
    await removeCgroups(join(this.cpuCg, "..")); // with any container cgroups made under it
  }
}

/** Per-request timings a proxy printed, from `from` on. */
export function records(
  out: string,
  from: number,
): { totalUs: number; upUs: number | null; method: string; reqBytes: number; respBytes: number; code: number }[] {
  return out
    .slice(from)
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
}

/** The proxies' records through the real filter (as Envoy would present them at log time) → report v2. */
export function filterReport(md: Record<string, string>, cluster: string, recs: ReturnType<typeof records>) {
  const h = filterHost({}, md);
  for (const r of recs)
    h.http(
      request(cluster, {
        host: "server.demo.svc.cluster.local:8080",
        ms: r.totalUs / 1000,
        upMs: r.upUs === null ? null : r.upUs / 1000,
        method: r.method,
        reqBytes: r.reqBytes,
        respBytes: r.respBytes,
        code: r.code,
      }),
    );
  h.tick();
  return bodyOf(h);
}

/** diagnose over one window: both proxies' records through the real filter, and the kernel's section. */
export function diagnoseWindow(
  pods: MeshedPod[],
  cr: ReturnType<typeof records>,
  sr: ReturnType<typeof records>,
  kernel: Parameters<DiagnoseStore["addKernel"]>[1],
): Diagnosis[] {
  const store = new DiagnoseStore();
  const now = Date.now();
  store.addReport(
    filterReport(
      { WORKLOAD_NAME: "client", NAMESPACE: "demo", NAME: pods[0].name },
      "outbound|8080||server.demo.svc.cluster.local",
      cr,
    ),
    now,
  );
  store.addReport(
    filterReport({ WORKLOAD_NAME: "server", NAMESPACE: "demo", NAME: pods[1].name }, "inbound|8080||", sr),
    now,
  );
  store.addKernel("node-a", kernel, now);
  return runDiagnose(store, { fromMs: now - 60_000, toMs: now });
}

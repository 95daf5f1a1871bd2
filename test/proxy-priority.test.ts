// Proxy CPU priority (controller/agent/proxy-priority.ts) on this host's cgroups: the cpu
// controller is on cgroup v1 here (hybrid), so the weight is cpu.shares of the container cgroups
// the kubelet would make (pod<uid>/<container id> in the unified and the cpu hierarchies). Child
// cgroups only, always removed. The effect is shown as a share of CPU time between two spinners
// pinned to one CPU (a proportion, not a speed: it holds with the other core busy).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import { kubeletShares, sharesToWeight, syncProxyPriority, wantsPriority } from "../controller/agent/proxy-priority.js";
import { prioritisedPod } from "./fixtures/pods.js";

const UNIFIED = "/sys/fs/cgroup/unified",
  CPU_V1 = "/sys/fs/cgroup/cpu";
const why =
  process.getuid?.() !== 0
    ? "not root"
    : !existsSync(join(CPU_V1, "cpu.shares"))
      ? "no cgroup v1 cpu controller at /sys/fs/cgroup/cpu"
      : "";

test("the kubelet's weights: MilliCPUToShares and CpuSharesToCpuWeight; opt-in by annotation or namespace label", () => {
  assert.is(kubeletShares("100m"), 102);
  assert.is(kubeletShares("1"), 1024);
  assert.is(kubeletShares(undefined), 2, "no request: the minimum");
  assert.is(sharesToWeight(1024), 39);
  assert.is(sharesToWeight(2), 1);
  const pod = (a: Record<string, string>): V1Pod => ({ metadata: { annotations: a } });
  const ns = { metadata: { labels: { "meshtune.io/proxy-priority": "true" } } };
  assert.ok(wantsPriority(pod({ "meshtune.io/proxy-priority": "true" }), undefined));
  assert.ok(wantsPriority(pod({}), ns));
  assert.not.ok(wantsPriority(pod({ "meshtune.io/proxy-priority": "false" }), ns), "a pod's false opts out");
  assert.not.ok(wantsPriority(pod({}), undefined));
});

/** CPU seconds a process used (utime + stime, clock ticks of 100 Hz). */
const cpuOf = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};

if (why && process.env.CI !== "true") console.log(`proxy-priority: kernel part skipped (${why})`);
else if (why) test("cgroup v1 cpu on CI", () => assert.unreachable(why));
else
  test("opted in: the proxy's cpu.shares is 8× its app's and it gets most of a contended CPU; opted out: the kubelet's value is back", async () => {
    const tag = randomBytes(3).toString("hex"),
      uid = `prio-${tag}`;
    const base = `meshtune-prio-${tag}`;
    const podRel = join(base, `pod${uid}`);
    const ids = { app: `a${tag}`, proxy: `p${tag}` };
    const dirs = [UNIFIED, CPU_V1].flatMap((root) => Object.values(ids).map((id) => join(root, podRel, id)));
    const procs: ChildProcess[] = [];
    try {
      for (const d of dirs) mkdirSync(d, { recursive: true });
      const pod = prioritisedPod(ids, "web", {
        name: "web",
        namespace: "shop",
        uid,
        annotations: { "meshtune.io/proxy-priority": "true" },
      });
      const shares = (id: string) => Number(readFileSync(join(CPU_V1, podRel, id, "cpu.shares"), "utf8"));
      writeFileSync(join(CPU_V1, podRel, ids.app, "cpu.shares"), "1024"); // what the kubelet sets for 1 CPU
      writeFileSync(join(CPU_V1, podRel, ids.proxy, "cpu.shares"), "102");
      const roots = { unified: UNIFIED, cpuV1: CPU_V1 };
      const on = syncProxyPriority(roots, join(UNIFIED, podRel), pod, true);
      assert.ok(on.applied, on.why);
      assert.is(shares(ids.proxy), 8 * 1024, on.why);
      assert.is(shares(ids.app), 1024, "the app's own weight is never touched");

      // Two spinners on CPU 1, one per container cgroup (v1 cpu hierarchy).
      const spin = (id: string) => {
        const p = spawn(
          "sh",
          [
            "-c",
            'echo $$ > "$0/cgroup.procs" && exec taskset -c 1 sh -c "while :; do :; done"',
            join(CPU_V1, podRel, id),
          ],
          { stdio: "ignore" },
        );
        procs.push(p);
        return p;
      };
      const share = async () => {
        const a = spin(ids.app),
          p = spin(ids.proxy);
        await new Promise((r) => setTimeout(r, 300));
        const a0 = cpuOf(a.pid!),
          p0 = cpuOf(p.pid!);
        await new Promise((r) => setTimeout(r, 1500));
        const ratio = (cpuOf(p.pid!) - p0) / Math.max(0.01, cpuOf(a.pid!) - a0);
        for (const x of [a, p]) x.kill("SIGKILL");
        await Promise.all([a, p].map((x) => new Promise((r) => (x.exitCode !== null ? r(null) : x.once("exit", r)))));
        return ratio;
      };
      const prioritized = await share();
      assert.ok(prioritized > 3, `proxy/app CPU ${prioritized.toFixed(2)} with priority (8:1 weights)`);

      const off = syncProxyPriority(roots, join(UNIFIED, podRel), pod, false);
      assert.not.ok(off.applied);
      assert.is(shares(ids.proxy), 102, "the kubelet's value for a 100m request");
      const plain = await share();
      assert.ok(plain < 1, `proxy/app CPU ${plain.toFixed(2)} without priority (102:1024 weights)`);
    } finally {
      for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 100));
      for (const d of [...dirs].reverse()) if (existsSync(d)) rmdirSync(d);
      for (const root of [UNIFIED, CPU_V1])
        for (const d of [join(root, podRel), join(root, base)]) if (existsSync(d)) rmdirSync(d);
    }
  });

test.run();

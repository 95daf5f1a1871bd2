// Node features: the probe on this machine's real kernel and CPU, recorded inputs of other
// nodes (test/fixtures/nodes), and an agent that refuses to load the datapath where a check fails.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { meshtune, CLI } from "./helpers/cli.js";
import { bpfUnavailable, loader, waitFor, CGROUP_ROOT, removeCgroups } from "./helpers/bpf.js";
import { evaluate, type BpfProbe } from "../controller/node/features.js";
import { nodeLabels, LABEL, labelValue } from "../controller/node/labels.js";
import { parseCpuinfo } from "../controller/node/cpu-flags.js";
import { realApiServer } from "./helpers/kube-apiserver.js";
import { nodeFixture, nodeInputs } from "./fixtures/node-inputs.js";

const fx = nodeFixture;
const probeFx = (f: string) => JSON.parse(fx(f)) as BpfProbe;
const inputs = nodeInputs;
const why = bpfUnavailable();

test("this machine: every check loads for real; CPU flags match /proc/cpuinfo; a child cgroup passes, the root is refused", async () => {
  if (why) return console.log(`  skipped: ${why}`);
  const dir = mkdtempSync(join(CGROUP_ROOT, "meshtune-test-"));
  try {
    const r = meshtune(["features", "--cgroup", dir, "-o", "json"]);
    assert.is(r.code, 0, r.stderr);
    const { features: f, labels } = JSON.parse(r.stdout);
    assert.ok(f.datapath.ok, f.datapath.reason);
    for (const feat of [
      "attach:cgroup/connect4",
      "attach:cgroup/connect6",
      "attach:cgroup/getsockopt",
      "attach:cgroup/sock_ops",
      "map:sockhash",
      "helper:sk_msg/msg_redirect_hash",
      "cgroup-v2",
      "cgroup-not-root",
    ])
      assert.ok(
        f.checks.some((c: { feature: string; ok: boolean }) => c.feature === feat && c.ok),
        feat,
      );
    const flags = (readFileSync("/proc/cpuinfo", "utf8").match(/^flags\s*:(.*)$/m)?.[1] ?? "").split(/\s+/);
    const want = ["avx512f", "avx512dq", "avx512bw", "avx512ifma", "avx512_vbmi2"].every((x) => flags.includes(x));
    assert.is(f.cryptomb.capable, want, "CryptoMB capability follows this CPU's flags");
    assert.is(labels[LABEL.cryptomb], String(want));
    assert.is(labels[LABEL.datapath], "true");
    assert.is(labels[LABEL.kernel], labelValue(f.kernel.version));

    const root = meshtune(["features", "--cgroup", CGROUP_ROOT, "-o", "json"]);
    const rf = JSON.parse(root.stdout).features;
    assert.not.ok(rf.datapath.ok);
    assert.match(rf.datapath.reason, /^cgroup-not-root: refusing to attach to the root cgroup/);
  } finally {
    await removeCgroups(dir);
  }
});

test("hazard range is judged from the release by the loader itself", () => {
  if (why) return console.log(`  skipped: ${why}`);
  const hz = (rel: string) => loader("probe", "--release", rel).json?.wakeupHazard;
  assert.is(hz("6.12.75-1-cloud-amd64"), true);
  assert.is(hz("6.12.74"), false);
  assert.is(hz("6.6.128"), true);
  assert.is(hz("6.18.13"), false);
  assert.is(hz("6.19.0"), true);
  assert.is(hz("5.15.0-105-generic"), false);
  assert.is(hz("garbage"), true, "an unparsable release is treated as affected (safe side)");
});

test("kernels with known sockmap defects: capture stays, splice off, the reason in the features and the label", () => {
  if (why) return console.log(`  skipped: ${why}`);
  const probe = (rel: string) => loader("probe", "--release", rel).json;
  const bad = probe("6.12.79-1-cloud-amd64");
  const check = bad.checks.find((c: { feature: string }) => c.feature === "kernel:sockmap-splice");
  assert.is(check.ok, false);
  assert.match(check.detail, /sendmsg stalls reported on 6\.12\.79: capture stays, splice off/);
  const f = evaluate({ ...inputs({}), probe: bad });
  assert.ok(f.datapath.ok, "the datapath itself still runs");
  assert.is(f.splice.ok, false);
  assert.is(nodeLabels(f)["meshtune.io/sockmap-splice"], "false");
  assert.ok(evaluate({ ...inputs({}), probe: probe("6.12.80") }).splice.ok);
});

test("recorded CPUs: Ice Lake capable; Skylake lacks IFMA+VBMI2; Zen 3 has no AVX-512; a mixed node has only what every CPU has; arm64 never", () => {
  assert.ok(evaluate(inputs({})).cryptomb.capable);
  assert.equal(evaluate(inputs({ cpuinfo: fx("cpuinfo-skylake.txt") })).cryptomb.missing, [
    "AVX512IFMA",
    "AVX512VBMI2",
  ]);
  const zen = evaluate(inputs({ cpuinfo: fx("cpuinfo-zen3.txt") }));
  assert.equal(zen.cryptomb.missing, ["AVX512F", "AVX512DQ", "AVX512BW", "AVX512IFMA", "AVX512VBMI2"]);
  assert.equal(nodeLabels(zen)[LABEL.cryptomb], "false");
  assert.not.ok(
    Object.keys(nodeLabels(zen)).some((k) => k.includes("cpu-cpuid")),
    "no NFD flag label for a flag the node lacks",
  );
  assert.equal(evaluate(inputs({ cpuinfo: fx("cpuinfo-mixed.txt") })).cryptomb.missing, ["AVX512IFMA"]);
  assert.ok(parseCpuinfo(fx("cpuinfo-mixed.txt")).flags.has("avx512_vbmi2"));
  assert.not.ok(evaluate(inputs({ arch: "arm64" })).cryptomb.capable);
});

test("recorded kernels: hazard range labelled; a missing BPF hook or helper disables the datapath naming it; tcpstats needs its own helpers", () => {
  const hz = evaluate(inputs({}));
  assert.ok(hz.datapath.ok);
  assert.is(nodeLabels(hz)[LABEL.hazard], "true");
  const noHook = evaluate(inputs({ probe: probeFx("probe-5.2-no-getsockopt-hook.json") }));
  assert.not.ok(noHook.datapath.ok);
  assert.match(noHook.datapath.reason!, /^prog:cgroup_sockopt/);
  assert.is(nodeLabels(noHook)[LABEL.datapath], "false");
  assert.is(nodeLabels(noHook)[LABEL.tcpstats], "false", "the probes hang off the datapath's pods map");
  const old = evaluate(inputs({ probe: probeFx("probe-5.4-missing-helpers.json") }));
  assert.match(old.datapath.reason!, /helper:sock_ops\/get_netns_cookie/);
  assert.match(old.tcpstats.reason!, /skc_to_tcp_sock/);
  assert.is(nodeLabels(old)[LABEL.hazard], "false");
  const broken = evaluate(inputs({ probe: { error: "BPF loader build/meshtune-bpf not found" } }));
  assert.match(broken.datapath.reason!, /feature probe failed: BPF loader/);
  assert.ok(broken.kernel.wakeupHazard, "unknown kernel: assume the hazard");
});

test("NFD present: its cpuid labels decide CryptoMB and meshtune writes none of NFD's names; QAT devices by driver", () => {
  const nfd = {
    "feature.node.kubernetes.io/cpu-cpuid.AVX512F": "true",
    "feature.node.kubernetes.io/cpu-cpuid.AVX512DQ": "true",
    "feature.node.kubernetes.io/cpu-cpuid.AVX512BW": "true",
  };
  const f = evaluate(inputs({ labels: nfd, pciDrivers: ["virtio-pci", "4xxx", "4xxx"] }));
  assert.is(f.cryptomb.source, "nfd");
  assert.equal(f.cryptomb.missing, ["AVX512IFMA", "AVX512VBMI2"]);
  assert.not.ok(Object.keys(nodeLabels(f)).some((k) => k.startsWith("feature.node.kubernetes.io/")));
  assert.is(f.qat.devices, 2);
  assert.is(nodeLabels(f)[LABEL.qat], "true");
  assert.is(labelValue("6.1.0-rc1+debug/x"), "6.1.0-rc1_debug_x");
});

// Publishing (labels by SSA, the status ConfigMap) runs against a real kube-apiserver with the
// agent's own token: test/real-apiserver-node.test.ts.

test("agent: a node whose checks fail runs without the datapath, says which check and why, and publishes it (real API server, the agent's own token)", async () => {
  if (why) return console.log(`  skipped: ${why}`);
  const k = await realApiServer();
  k.installManifests();
  k.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: "n2" } }));
  const dir = mkdtempSync(join(tmpdir(), "meshtune-notcg-"));
  const kc = k.kubeconfigFor(k.token("meshtune-system", "meshtune-node"), "meshtune-node-n2");
  const before = loader("status").json;
  const p = spawn(
    process.execPath,
    [CLI, "agent", "--node", "n2", "--kubeconfig", kc, "--cgroup", dir, "--metrics-port", "0"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  p.stdout.on("data", (d) => (out += d));
  p.stderr.on("data", (d) => (out += d));
  const cmOf = () => {
    try {
      return JSON.parse(k.kubectl(["get", "configmap", "-n", "meshtune-system", "meshtune-node-n2", "-o", "json"]));
    } catch {
      return null;
    }
  };
  try {
    const cm = await waitFor(cmOf, (c) => !!c, 15_000);
    assert.match(cm.data.datapath, /^disabled: cgroup-v2: cgroup .* is not on a cgroup v2 filesystem/);
    const n = JSON.parse(k.kubectl(["get", "node", "n2", "-o", "json"]));
    assert.is(n.metadata.labels[LABEL.datapath], "false");
    await waitFor(
      () => out,
      (o) => /datapath disabled on this node: cgroup-v2/.test(o),
      5000,
    );
    assert.match(out, /datapath disabled on this node: cgroup-v2/);
    assert.equal(loader("status").json?.loaded ?? false, before?.loaded ?? false, "nothing was loaded");
    const denied = k.audited("system:serviceaccount:meshtune-system:meshtune-node").filter((a) => a.code === 403);
    assert.equal(denied, [], JSON.stringify(denied));
  } finally {
    p.kill("SIGTERM");
  }
});

test.run();

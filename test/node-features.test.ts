// Node features: the probe on this machine's real kernel and CPU, recorded inputs of other
// nodes (test/fixtures/nodes), publishing to the fake API server (label-level SSA ownership as
// the real API server keeps it: test/k8s/fake-apiserver.ts), and an agent that refuses to load
// the datapath where a check fails.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { meshtune, ROOT, CLI } from "./helpers/cli.js";
import { bpfUnavailable, loader, waitFor, CGROUP_ROOT, removeCgroups } from "./helpers/bpf.js";
import { evaluate, type NodeInputs, type BpfProbe } from "../controller/node/features.js";
import { nodeLabels, LABEL, labelValue } from "../controller/node/labels.js";
import { parseCpuinfo } from "../controller/node/cpu-flags.js";
import { publishNodeFeatures, AGENT_FIELD_MANAGER } from "../controller/node/publish.js";
import { FakeApiServer } from "./k8s/fake-apiserver.js";
import { loadKubeConfig, objectApi } from "../controller/k8s/kube.js";
import { PatchStrategy } from "@kubernetes/client-node";

const fx = (f: string) => readFileSync(join(ROOT, "test/fixtures/nodes", f), "utf8");
const probeFx = (f: string) => JSON.parse(fx(f)) as BpfProbe;
const here = JSON.parse(fx("probe-6.12.75-hazard.json")) as BpfProbe;
const inputs = (o: Partial<NodeInputs>): NodeInputs => ({
  probe: here,
  cpuinfo: fx("cpuinfo-icelake.txt"),
  arch: "x64",
  kernelConfig: null,
  pciDrivers: [],
  labels: {},
  ...o,
});
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

test("publish: labels by SSA without force (NFD's keys are never taken), dropped keys removed, status ConfigMap owned by the Node", async () => {
  const fake = new FakeApiServer();
  await fake.start();
  try {
    const api = objectApi(loadKubeConfig({ yaml: fake.kubeconfig() }));
    await api.patch(
      {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: "n1", uid: "node-uid-1", labels: { "kubernetes.io/hostname": "n1" } },
      } as never,
      undefined,
      undefined,
      "kubelet",
      true,
      PatchStrategy.ServerSideApply,
    );
    await publishNodeFeatures(api, "n1", "meshtune-system", evaluate(inputs({})));
    let n = fake.get("nodes", null, "n1")!;
    assert.is(n.metadata.labels["kubernetes.io/hostname"], "n1", "other managers' labels untouched");
    assert.is(n.metadata.labels[LABEL.cryptomb], "true");
    assert.is(
      n.metadata.labels["feature.node.kubernetes.io/cpu-cpuid.AVX512IFMA"],
      "true",
      "NFD's name where NFD is absent",
    );
    const cm = fake.get("configmaps", "meshtune-system", "meshtune-node-n1")!;
    assert.equal(cm.metadata.ownerReferences, [{ apiVersion: "v1", kind: "Node", name: "n1", uid: n.metadata.uid }]);
    assert.is(JSON.parse(cm.data["features.json"]).cryptomb.capable, true);
    assert.is(cm.data.datapath, "enabled");

    // The node is re-imaged onto a Zen 3 CPU: the cpuid labels meshtune applied are removed.
    await publishNodeFeatures(
      api,
      "n1",
      "meshtune-system",
      evaluate(inputs({ cpuinfo: fx("cpuinfo-zen3.txt"), probe: probeFx("probe-5.2-no-getsockopt-hook.json") })),
    );
    n = fake.get("nodes", null, "n1")!;
    assert.not.ok("feature.node.kubernetes.io/cpu-cpuid.AVX512IFMA" in n.metadata.labels);
    assert.is(n.metadata.labels[LABEL.datapath], "false");
    assert.match(
      fake.get("configmaps", "meshtune-system", "meshtune-node-n1")!.data.datapath,
      /^disabled: prog:cgroup_sockopt/,
    );

    // An admin pins meshtune.io/cryptomb=false by hand: meshtune's apply conflicts, never overwrites.
    await api.patch(
      { apiVersion: "v1", kind: "Node", metadata: { name: "n1", labels: { [LABEL.cryptomb]: "false" } } } as never,
      undefined,
      undefined,
      "admin",
      true,
      PatchStrategy.ServerSideApply,
    );
    const err = await publishNodeFeatures(api, "n1", "meshtune-system", evaluate(inputs({}))).catch((e) => e);
    assert.ok(err instanceof Error, "conflict surfaces as an error the agent logs and retries");
    assert.is(fake.get("nodes", null, "n1")!.metadata.labels[LABEL.cryptomb], "false");
    assert.ok(AGENT_FIELD_MANAGER);
  } finally {
    await fake.stop();
  }
});

test("agent: a node whose checks fail runs without the datapath, says which check and why, and publishes it", async () => {
  if (why) return console.log(`  skipped: ${why}`);
  const fake = new FakeApiServer();
  await fake.start();
  const dir = mkdtempSync(join(tmpdir(), "meshtune-notcg-"));
  const kc = join(dir, "kubeconfig");
  (await import("node:fs")).writeFileSync(kc, fake.kubeconfig());
  fake.put("nodes", { apiVersion: "v1", kind: "Node", metadata: { name: "n2", labels: {} } });
  const before = loader("status").json;
  const p = spawn(
    process.execPath,
    [CLI, "agent", "--node", "n2", "--kubeconfig", kc, "--cgroup", dir, "--metrics-port", "0"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  p.stdout.on("data", (d) => (out += d));
  p.stderr.on("data", (d) => (out += d));
  try {
    await waitFor(
      () => fake.get("configmaps", "meshtune-system", "meshtune-node-n2"),
      (c) => !!c,
      8000,
    );
    const cm = fake.get("configmaps", "meshtune-system", "meshtune-node-n2")!;
    assert.match(cm.data.datapath, /^disabled: cgroup-v2: cgroup .* is not on a cgroup v2 filesystem/);
    assert.is(fake.get("nodes", null, "n2")!.metadata.labels[LABEL.datapath], "false");
    assert.match(out, /datapath disabled on this node: cgroup-v2/);
    assert.equal(loader("status").json?.loaded ?? false, before?.loaded ?? false, "nothing was loaded");
  } finally {
    p.kill("SIGTERM");
    await fake.stop();
  }
});

test.run();

import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";
import { ROOT } from "./helpers/cli.js";
import { HostBuilder } from "./proxywasm/host.js";
import { FILTER_WASM } from "./helpers/filter.js";

const wp = parse(readFileSync(join(ROOT, "manifests/wasmplugin.yaml"), "utf8"));

test("WasmPlugin validates against Istio's schema; STATS, both modes, FAIL_OPEN", () => {
  new WasmPlugin(wp).validate();
  assert.is(wp.spec.phase, "STATS");
  assert.is(wp.spec.failStrategy, "FAIL_OPEN");
  assert.equal(wp.spec.match, [{ mode: "CLIENT_AND_SERVER" }]);
});

test("WasmPlugin sha256 pins the module that make build produced", () => {
  assert.is(wp.spec.sha256, readFileSync(FILTER_WASM + ".sha256", "utf8").trim());
});

test("the shipped pluginConfig is accepted by the filter without errors", () => {
  const h = new HostBuilder().wasmFile(FILTER_WASM).pluginConfig(wp.spec.pluginConfig).build();
  assert.ok(h.start());
  assert.equal(h.logsAt("error"), []);
  assert.is(h.tickPeriodMs, wp.spec.pluginConfig.flushIntervalMs);
});

test("node DaemonSet: privileged, mounts bpffs/cgroup/proc, unloads in preStop", () => {
  const ds = parse(readFileSync(join(ROOT, "manifests/node-daemonset.yaml"), "utf8"));
  const c = ds.spec.template.spec.containers[0];
  assert.is(c.securityContext.privileged, true);
  assert.equal(c.volumeMounts.map((m: { mountPath: string }) => m.mountPath).sort(), ["/host/proc", "/sys/fs/bpf", "/sys/fs/cgroup"]);
  assert.equal(c.lifecycle.preStop.exec.command, ["meshtune", "bpf", "unload"]);
  assert.not.match(c.args.join(" "), /--cgroup \/sys\/fs\/cgroup(\s|$)/, "never the root cgroup");
});

test.run();

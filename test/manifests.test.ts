import { test } from "uvu";
import * as assert from "uvu/assert";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";
import { ROOT } from "./helpers/cli.js";
import { HostBuilder } from "./proxywasm/host.js";
import { FILTER_WASM } from "./helpers/filter.js";

const plugins = parseAllDocuments(readFileSync(join(ROOT, "manifests/wasmplugin.yaml"), "utf8")).map((d) => d.toJS());
const wp = plugins[0];

test("WasmPlugins validate against Istio's schema; HTTP and NETWORK, STATS, both modes, FAIL_OPEN, one module", () => {
  assert.equal(
    plugins.map((p) => p.spec.type ?? "HTTP"),
    ["HTTP", "NETWORK"],
  );
  for (const p of plugins) {
    new WasmPlugin(p).validate();
    assert.is(p.spec.phase, "STATS");
    assert.is(p.spec.failStrategy, "FAIL_OPEN");
    assert.equal(p.spec.match, [{ mode: "CLIENT_AND_SERVER" }]);
    assert.equal([p.spec.url, p.spec.sha256, p.spec.pluginConfig], [wp.spec.url, wp.spec.sha256, wp.spec.pluginConfig]);
  }
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

const docs = (f: string) => parseAllDocuments(readFileSync(join(ROOT, "manifests", f), "utf8")).map((d) => d.toJS());

test("node DaemonSet: runs the agent on its node's kubepods cgroup, no unload on stop, RBAC for its pods", () => {
  const ds = parse(readFileSync(join(ROOT, "manifests/node-daemonset.yaml"), "utf8"));
  const spec = ds.spec.template.spec,
    c = spec.containers[0];
  assert.is(c.securityContext.privileged, false, "exactly the capabilities it needs, not privileged");
  assert.equal(c.securityContext.capabilities, { drop: ["ALL"], add: ["BPF", "NET_ADMIN", "PERFMON"] });
  assert.is(c.securityContext.runAsUser, 0, "the image's user 65532 would get no capabilities (kubernetes#56374)");
  assert.ok(
    c.args.includes("--collector=http://meshtune-controller.meshtune-system.svc.cluster.local:8081/v1/reports"),
    "the token port: the agent is off the mesh",
  );
  const svc = docs("controller.yaml").find((d) => d?.kind === "Service" && d.metadata.name === "meshtune-controller");
  assert.ok(
    svc.spec.ports.some((p: { port: number }) => p.port === 8081),
    "the Service exposes the token port",
  );
  assert.is(c.args[0], "agent");
  assert.equal(c.volumeMounts.map((m: { mountPath: string }) => m.mountPath).sort(), [
    "/sys/fs/bpf",
    "/sys/fs/cgroup",
    "/var/run/secrets/meshtune",
  ]);
  assert.is(c.lifecycle?.preStop, undefined, "a restart must not drop every pod's capture");
  assert.is(spec.hostPID, true, "the agent reads /proc/PID/net/tcp of pod processes");
  assert.is(
    spec.serviceAccountName,
    "meshtune-node",
    "the identity the collector accepts agent reports from (--agent-identity default)",
  );
  assert.equal(
    c.env.find((e: { name: string }) => e.name === "NODE_NAME").valueFrom.fieldRef.fieldPath,
    "spec.nodeName",
  );
  const cg = c.env.find((e: { name: string }) => e.name === "MESHTUNE_CGROUP").value;
  assert.match(cg, /^\/sys\/fs\/cgroup\/kubepods/, "never the root cgroup");
  assert.ok(c.args.includes("--cgroup=$(MESHTUNE_CGROUP)"));
  const rbac = docs("rbac.yaml");
  const role = rbac.find((d) => d.kind === "ClusterRole" && d.metadata.name === "meshtune-node");
  // Pods to capture; namespaces for ambient enrolment labels; its own Node to label (node
  // features); nothing else cluster-wide.
  assert.equal(role.rules, [
    { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
    { apiGroups: [""], resources: ["namespaces"], verbs: ["get", "list", "watch"] },
    { apiGroups: [""], resources: ["nodes"], verbs: ["get", "patch"] },
  ]);
  assert.ok(rbac.some((d) => d.kind === "ClusterRoleBinding" && d.subjects?.[0]?.name === "meshtune-node"));
});

test("kustomize base lists every manifest, and each parses", () => {
  const k = parse(readFileSync(join(ROOT, "manifests/kustomization.yaml"), "utf8"));
  const files = readdirSync(join(ROOT, "manifests"))
    .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
    .sort();
  assert.equal([...k.resources].sort(), files);
  for (const f of files)
    for (const d of docs(f)) assert.ok(d.kind && d.metadata?.name, `${f}: ${JSON.stringify(d).slice(0, 80)}`);
});

test("RBAC is least privilege: no wildcards, no secrets, Sidecars are the only mesh objects written", () => {
  const all = docs("rbac.yaml").flatMap((d) => d.rules ?? []);
  const rules = all.filter((r: { resources?: string[] }) => r.resources);
  for (const r of rules) {
    assert.not.ok([...r.verbs, ...r.resources, ...r.apiGroups].includes("*"), JSON.stringify(r));
    assert.not.ok(r.resources.includes("secrets"));
  }
  // The reader role grants GET on meshtune's own read URLs only.
  for (const r of all.filter((x: { nonResourceURLs?: string[] }) => x.nonResourceURLs)) assert.equal(r.verbs, ["get"]);
  const writes = rules
    .filter((r: { verbs: string[] }) => r.verbs.some((v) => ["create", "patch", "update", "delete"].includes(v)))
    .flatMap((r: { resources: string[] }) => r.resources);
  // tokenreviews/subjectaccessreviews are "create" but store nothing: they are questions to the API server.
  assert.equal(
    [...new Set(writes)].sort(),
    ["configmaps", "events", "leases", "nodes", "sidecars", "subjectaccessreviews", "tokenreviews"],
    "nodes: the agent's feature labels only",
  );
});

test("opt-in tuning RBAC (not in the base): meshtune's rules and workload patches only; workloads never created", () => {
  const k = parse(readFileSync(join(ROOT, "manifests/kustomization.yaml"), "utf8"));
  assert.not.ok(
    k.resources.some((r: string) => r.includes("tuning")),
    "opt-in: not installed by default",
  );
  const all = parseAllDocuments(readFileSync(join(ROOT, "manifests/optional/tuning-apply.yaml"), "utf8")).map((d) =>
    d.toJS(),
  );
  const role = all.find((d) => d.kind === "ClusterRole");
  assert.equal(role.rules, [
    {
      apiGroups: ["networking.istio.io"],
      resources: ["virtualservices", "destinationrules"],
      verbs: ["create", "patch", "delete"],
    },
    { apiGroups: ["apps"], resources: ["deployments", "statefulsets", "daemonsets"], verbs: ["get", "patch"] },
  ]);
  assert.is(all.find((d) => d.kind === "ClusterRoleBinding").subjects[0].name, "meshtune-controller");
});

test("controller Deployment: probes on /healthz and /readyz, non-root; Service port matches the filter's collector cluster", () => {
  const [dep, svc] = docs("controller.yaml");
  const c = dep.spec.template.spec.containers[0];
  assert.is(c.readinessProbe.httpGet.path, "/readyz");
  assert.is(c.livenessProbe.httpGet.path, "/healthz");
  assert.is(dep.spec.template.spec.securityContext.runAsNonRoot, true);
  const port = svc.spec.ports[0].port;
  assert.is(
    wp.spec.pluginConfig.collectorCluster,
    `outbound|${port}||${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`,
  );
});

test("fallback: injected by label, full scope, TPROXY, one sniffed port matching the egressProxy every Sidecar gets", () => {
  const all = docs("fallback.yaml");
  const dep = all.find((d) => d.kind === "Deployment"),
    svc = all.find((d) => d.kind === "Service");
  const t = dep.spec.template;
  assert.is(
    t.metadata.labels["sidecar.istio.io/inject"],
    "true",
    "the namespace has no injection label: the object selector injects it",
  );
  assert.is(t.metadata.annotations["meshtune.io/enabled"], "false", "meshtune never scopes the fallback");
  assert.is(
    t.metadata.annotations["sidecar.istio.io/interceptionMode"],
    "TPROXY",
    "keeps the caller's address for TLS callers",
  );
  assert.equal(t.spec.containers[0].args.slice(0, 2), ["fallback", "--port=8080"]);
  assert.is(
    `${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`,
    "meshtune-fallback.meshtune-system.svc.cluster.local",
  );
  assert.equal(
    svc.spec.ports.map((p: { port: number; targetPort: number; name: string; appProtocol?: string }) => [
      p.port,
      p.targetPort,
      /^(http|https|tcp|tls|grpc)/.test(p.name) || !!p.appProtocol,
    ]),
    [[80, 8080, false]],
    "one port, protocol sniffed (egressProxy has one port)",
  );
  assert.is(
    t.spec.serviceAccountName,
    "meshtune-fallback",
    "the identity the collector accepts fallback reports from (--fallback-identity default)",
  );
  const kust = parse(readFileSync(join(ROOT, "manifests/kustomization.yaml"), "utf8"));
  assert.ok(kust.resources.includes("fallback.yaml"));
});

test.run();

// The Helm chart (manifests/helm/meshtune) against the kustomize base, with Helm 4 built from the
// Go module proxy (make helm): `helm lint`; `helm template` with the default values renders
// exactly the objects `kubectl kustomize manifests/` does; the values switch components, the
// namespace, the image, the Wasm module, the agent's cgroup path and the Istio revision.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { ROOT } from "./helpers/cli.js";
import { FILTER_WASM } from "./helpers/filter.js";

const HELM = join(ROOT, "build/helm/helm");
const CHART = join(ROOT, "manifests/helm/meshtune");
type Obj = Record<string, any>;
const docs = (y: string): Obj[] =>
  parseAllDocuments(y)
    .map((d) => d.toJS() as Obj)
    .filter((o) => o && o.kind);
const key = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
const byKey = (os: Obj[]) => new Map(os.map((o) => [key(o), o]));
const template = (...set: string[]) =>
  docs(
    execFileSync(HELM, ["template", "meshtune", CHART, "-n", "meshtune-system", ...set.flatMap((s) => ["--set", s])], {
      encoding: "utf8",
    }),
  );
const kustomize = (dir: string) =>
  docs(execFileSync(join(ROOT, "build/kube/kubectl"), ["kustomize", dir], { encoding: "utf8" }));

test("helm lint passes", () => {
  const out = execFileSync(HELM, ["lint", CHART], { encoding: "utf8" });
  assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
});

test("default values render exactly the kustomize base", () => {
  const chart = byKey(template()),
    base = byKey(kustomize(join(ROOT, "manifests")));
  assert.equal([...chart.keys()].sort(), [...base.keys()].sort());
  for (const [k, o] of base) assert.equal(chart.get(k), o, k);
});

test("tuningApply.enabled adds exactly manifests/optional/tuning-apply.yaml", () => {
  const on = byKey(template("tuningApply.enabled=true")),
    off = byKey(template());
  const added = [...on.keys()].filter((k) => !off.has(k));
  const optional = docs(readFileSync(join(ROOT, "manifests/optional/tuning-apply.yaml"), "utf8"));
  assert.equal(added.sort(), optional.map(key).sort());
  for (const o of optional) assert.equal(on.get(key(o)), o, key(o));
});

test("values: components, namespace, image, module, cgroup path, revision", () => {
  const none = template("agent.enabled=false", "fallback.enabled=false", "filter.enabled=false");
  assert.not.ok(none.some((o) => o.kind === "DaemonSet" || o.kind === "WasmPlugin"));
  assert.not.ok(none.some((o) => key(o).includes("meshtune-fallback") && o.kind === "Deployment"));
  const custom = docs(
    execFileSync(
      HELM,
      [
        ...["template", "mt", CHART, "-n", "mesh-tools"],
        ...["--set", "image.repository=registry.example.com/mt", "--set", "image.tag=1.2.3"],
        ...[
          "--set",
          "filter.url=oci://registry.example.com/mt-filter:1.2.3",
          "--set",
          `filter.sha256=${"a".repeat(64)}`,
        ],
        ...["--set", "agent.kubepodsPath=/sys/fs/cgroup/kubepods", "--set", "istio.revision=canary"],
      ],
      { encoding: "utf8" },
    ),
  );
  const dep = custom.find((o) => o.kind === "Deployment" && o.metadata.name === "meshtune-controller")!;
  assert.is(dep.metadata.namespace, "mesh-tools");
  assert.is(dep.spec.template.spec.containers[0].image, "registry.example.com/mt:1.2.3");
  assert.is(dep.spec.template.metadata.labels["istio.io/rev"], "canary");
  const wp = custom.find((o) => o.kind === "WasmPlugin")!;
  assert.equal([wp.spec.url, wp.spec.sha256], ["oci://registry.example.com/mt-filter:1.2.3", "a".repeat(64)]);
  assert.match(wp.spec.pluginConfig.collectorCluster, /meshtune-controller\.mesh-tools\.svc/);
  const ds = custom.find((o) => o.kind === "DaemonSet")!;
  assert.ok(
    ds.spec.template.spec.containers[0].env.some(
      (e: Obj) => e.name === "MESHTUNE_CGROUP" && e.value === "/sys/fs/cgroup/kubepods",
    ),
  );
  assert.not.ok(JSON.stringify(custom).includes("meshtune-system"), "no object still names the default namespace");
});

test("the chart's default sha256 pins the module make build produced", () => {
  const values = parseAllDocuments(readFileSync(join(CHART, "values.yaml"), "utf8"))[0].toJS();
  assert.is(values.filter.sha256, readFileSync(FILTER_WASM + ".sha256", "utf8").trim());
});

test.run();

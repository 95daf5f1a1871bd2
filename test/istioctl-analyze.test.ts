// `istioctl analyze --use-kube=false -A` (istioctl built from the pinned istio.io/istio) over
// everything meshtune writes, with the catalog it was written for: zero errors, warnings and
// infos, or the test names the message. Also a guard that analyze saw every object: an object
// istioctl cannot parse is skipped with only a log line.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { istioctlAnalyze, describe } from "./helpers/istioctl.js";
import { CLI, ROOT } from "./helpers/cli.js";
import { syntheticMesh } from "./fixtures/istio-mesh.js";
import { generateSidecars, DEFAULT_GENERATE, buildSidecar } from "../controller/sidecar/generate.js";
import { DEFAULT_COLLECTOR_HOST, DEFAULT_FALLBACK_HOST } from "../controller/sidecar/scope.js";
import { HostIndex } from "../controller/istio/hosts.js";
import { parseCatalog } from "../controller/sidecar/catalog.js";
import { virtualServiceRefs } from "../controller/istio/virtual-services.js";
import { DEFAULT_MESH } from "../controller/istio/mesh-config.js";
import { toYaml } from "../controller/k8s/yaml.js";

const CATALOG = readFileSync(`${ROOT}/samples/bookinfo/catalog.json`, "utf8");
const recommend = (...flags: string[]) =>
  execFileSync(
    "node",
    [
      CLI,
      "recommend",
      "--access-log",
      `${ROOT}/samples/bookinfo/access.log`,
      "--catalog",
      `${ROOT}/samples/bookinfo/catalog.json`,
      "--min-requests",
      "20",
      "-o",
      "yaml",
      ...flags,
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
  );

test("the manifests (kustomize build) are clean", () => {
  const kubectl = `${ROOT}/build/kube/kubectl`;
  const m = istioctlAnalyze({
    "manifests.yaml": execFileSync(kubectl, ["kustomize", `${ROOT}/manifests`], { encoding: "utf8" }),
  });
  assert.equal(m, [], describe(m));
});

test("the Helm chart's render (every component on, a revision set) is clean", () => {
  const out = execFileSync(
    `${ROOT}/build/helm/helm`,
    [
      "template",
      "meshtune",
      `${ROOT}/manifests/helm/meshtune`,
      "-n",
      "meshtune-system",
      "--set",
      "tuningApply.enabled=true",
    ],
    { encoding: "utf8" },
  );
  const m = istioctlAnalyze({ "chart.yaml": out });
  assert.equal(m, [], describe(m));
});

const FALLBACK = ["--fallback-host", DEFAULT_FALLBACK_HOST];
for (const flags of [
  [],
  ["--rules"],
  ["--resources"],
  ["--discovery"],
  ["--cryptomb"],
  ["--rules", "--resources", "--discovery", "--cryptomb"],
])
  for (const fb of [[], FALLBACK])
    test(`recommend ${[...flags, ...fb].join(" ") || "(no options)"} on the bundled sample is clean`, () => {
      const out = recommend(...flags, ...fb);
      assert.match(out, /kind: Sidecar/);
      if (fb.length) assert.match(out, /egressProxy/);
      const m = istioctlAnalyze({ "catalog.json": CATALOG, "meshtune.yaml": out });
      assert.equal(m, [], describe(m));
    });

test("Sidecars for a synthetic 240-service mesh (ALLOW_ANY with the fallback, and REGISTRY_ONLY) are clean", () => {
  const mesh = syntheticMesh(240);
  for (const mode of ["ALLOW_ANY", "REGISTRY_ONLY"] as const) {
    const res = generateSidecars(mesh.graph, {
      ...DEFAULT_GENERATE,
      mesh: { ...DEFAULT_MESH, outboundMode: mode },
      meshtuneHosts: [DEFAULT_COLLECTOR_HOST, DEFAULT_FALLBACK_HOST],
      egressProxy: { host: DEFAULT_FALLBACK_HOST, port: 80 },
      index: new HostIndex(parseCatalog({ items: mesh.items })),
      virtualServices: virtualServiceRefs(mesh.items, "cluster.local"),
    });
    assert.ok(res.sidecars.length > 200);
    const m = istioctlAnalyze({
      "catalog.yaml": mesh.items.map((o) => toYaml(o)).join("---\n"),
      "meshtune.yaml": res.sidecars.map((s) => toYaml(s)).join("---\n"),
    });
    assert.equal(m, [], `${mode}: ${describe(m)}`);
  }
});

test("meshtune writes YAML that Kubernetes' YAML 1.1 readers parse as written (a namespace y, a label no)", () => {
  const sc = buildSidecar("y", "on", { app: "no" }, ["y/*", "istio-system/*"]);
  assert.type(sc, "object");
  const out = toYaml(sc);
  assert.match(out, /namespace: "y"/);
  // istioctl would skip a misread object with only a log line; the helper turns that into an error.
  assert.equal(istioctlAnalyze({ "s.yaml": out }), []);
  assert.throws(
    () => istioctlAnalyze({ "bare.yaml": out.replace(/"y"/g, "y").replace(/"no"/g, "no") }),
    /could not read/,
  );
});

test.run();

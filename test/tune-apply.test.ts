// Opted-in tuning applied by the controller against the fake API server (test/k8s/fake-apiserver.ts,
// whose server-side apply keeps field ownership as Kubernetes does: test/k8s/field-ownership.ts):
// meshtune's own VirtualServices/DestinationRules only, workload patches never forced over a
// field someone else set, withdrawal removing only meshtune's fields, dry-run writing nothing,
// and the rollout budget.
import { istioctlAnalyze, describe } from "./helpers/istioctl.js";
import { toYaml } from "../controller/k8s/yaml.js";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Registry } from "prom-client";
import { FakeApiServer } from "./k8s/fake-apiserver.js";
import { loadKubeConfig, objectApi } from "../controller/k8s/kube.js";
import { LearnedStore } from "../controller/k8s/learned-store.js";
import { MeshController } from "../controller/reconcile/controller.js";
import { Graph } from "../controller/model/graph.js";
import { deploymentPod } from "./fixtures/pods.js";
import { DEFAULT_SCOPE, DEFAULT_COLLECTOR_HOST } from "../controller/sidecar/scope.js";
import { withinChange, type TuneKind, type TuneOutcome } from "../controller/tune/apply.js";
import { RESOURCES_MANAGER, CRYPTOMB_MANAGER } from "../controller/tune/apply.js";
import { controllerOfPod } from "../controller/model/identity.js";
import { recordUpdate, serverSideApply } from "./k8s/field-ownership.js";
import { tuningFlags } from "../controller/commands/controller.js";

const H = 3600_000;
const NOW = Date.parse("2026-11-22T12:00:00Z");
const D = "cluster.local";
const fq = (s: string) => `${s}.shop.svc.${D}`;
const FALLBACK = { host: "meshtune-fallback.meshtune-system.svc.cluster.local", port: 80 };
const quiet = () => {};

/** n GET requests from→to, latencies spread up to maxMs, two hours ago. */
function calls(g: Graph, ns: string, from: string, to: string, n: number, maxMs: number) {
  const a = g.node(ns, from)!,
    b = g.node("shop", to)!;
  for (let i = 0; i < n; i++) {
    const us = Math.round(((i + 1) / n) * maxMs * 1000),
      at = NOW - 2 * H + i * 10;
    g.observe(
      a,
      { dir: "outbound", cluster: `outbound|8080||${fq(to)}`, authority: `${to}:8080`, proto: "HTTP/1.1" },
      200,
      us,
      at,
      "GET",
    );
    g.observe(
      b,
      { dir: "inbound", cluster: "inbound|8080||", authority: `${to}:8080`, proto: "HTTP/1.1" },
      200,
      us,
      at,
    );
  }
}

const deployment = (ns: string, name: string, annotations: Record<string, string> = {}) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name, namespace: ns },
  spec: {
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name }, annotations }, spec: { containers: [{ name, image: "app:1" }] } },
  },
});

async function setup(o: { kinds?: TuneKind[]; dryRun?: boolean; maxRollouts?: number } = {}) {
  const fake = await new FakeApiServer().start();
  fake.put("namespaces", { metadata: { name: "shop", labels: { "meshtune.io/enabled": "true" } } });
  fake.put("namespaces", { metadata: { name: "gw" } });
  for (const s of ["a", "b", "c"])
    fake.put("services", {
      metadata: { name: s, namespace: "shop" },
      spec: { clusterIP: "10.96.0.10", ports: [{ name: "http", port: 8080 }] },
    });
  for (const [w, h] of [
    ["a", "5d9f7c6b8"],
    ["b", "7c8d9e6f5"],
    ["c", "6b7c8d9e4"],
  ]) {
    fake.put("pods", deploymentPod("shop", w, h, "x1y2z", { app: w }));
    fake.put("deployments", deployment("shop", w));
  }
  // b's owner already sized its sidecar (kubectl apply: the field belongs to them).
  fake.put("deployments", deployment("shop", "b", { "sidecar.istio.io/proxyCPU": "2" }));
  // An ingress gateway (proxy-only pod labelled istio=…), opted in by annotation; one capable node.
  const gwPod = deploymentPod(
    "gw",
    "ingress",
    "5f6a7b8c9",
    "g1h2j",
    { app: "ingress", istio: "ingressgateway" },
    { annotations: { "meshtune.io/enabled": "true" } },
  );
  gwPod.spec.containers = [{ name: "istio-proxy", image: "docker.io/istio/proxyv2:1.27.0" }];
  fake.put("pods", gwPod);
  fake.put("deployments", deployment("gw", "ingress"));
  fake.put("nodes", { metadata: { name: "n1", labels: { "meshtune.io/cryptomb": "true" } } });
  fake.put("nodes", { metadata: { name: "n2", labels: { "meshtune.io/cryptomb": "false" } } });

  const kc = loadKubeConfig({ yaml: fake.kubeconfig() });
  const api = objectApi(kc);
  const graph = new Graph();
  calls(graph, "shop", "a", "b", 400, 300);
  calls(graph, "shop", "b", "c", 400, 200);
  calls(graph, "gw", "ingress", "a", 400, 350);
  const ctl = new MeshController(
    kc,
    api,
    graph,
    new LearnedStore(api, quiet),
    {
      mode: "apply",
      minWindowMs: H,
      retentionMs: 7 * 24 * H,
      fallback: FALLBACK,
      scope: { ...DEFAULT_SCOPE, meshtuneHosts: [DEFAULT_COLLECTOR_HOST, FALLBACK.host] },
      defaultEnabled: false,
      dryRun: o.dryRun ?? false,
      clusterDomain: D,
      now: () => NOW,
      flushDelayMs: 10,
      applyTuning: o.kinds ?? ["rules", "resources", "cryptomb"],
      istioVersion: [1, 25],
      tuneMinRequests: 100,
      maxRollouts: o.maxRollouts ?? 5,
    },
    quiet,
    new Registry(),
  );
  ctl.leading = true;
  await ctl.start();
  await new Promise((r) => setTimeout(r, 50));
  await ctl.queue.drained(); // reconcile records each workload's first-seen (the observation window)
  const writes = () =>
    fake.requests.filter(
      (r) =>
        ["PATCH", "POST", "DELETE", "PUT"].includes(r.method) &&
        !r.path.includes("configmaps") &&
        !r.path.includes("events") &&
        !r.path.includes("sidecars"),
    ).length;
  const outcome = (out: TuneOutcome[], kind: string, object: string) =>
    out.find((x) => x.kind === kind && x.object === object);
  return {
    fake,
    ctl,
    writes,
    outcome,
    close: async () => {
      await ctl.stop();
      await fake.stop();
    },
  };
}

test("opted-in tuning: meshtune's own VS/DR and sidecar-resource patches by SSA; a field the user set is never overridden; a second pass writes nothing", async () => {
  const t = await setup();
  try {
    const out = await t.ctl.tunePass();
    const vsB = t.fake.get("virtualservices", "shop", "meshtune-b")!;
    assert.ok(vsB, JSON.stringify(out, null, 1));
    assert.is(vsB.metadata.labels["app.kubernetes.io/managed-by"], "meshtune");
    assert.equal(vsB.spec.hosts, [fq("b")]);
    assert.ok(vsB.spec.http[0].timeout, "timeout from the tail");
    assert.ok(vsB.metadata.managedFields.some((f: { manager: string }) => f.manager === "meshtune"));
    assert.is(t.outcome(out, "rules", "VirtualService/shop/meshtune-b")!.action, "applied");

    // a: no one sized it → meshtune's annotations, owned by its own field manager.
    const a = t.fake.get("deployments", "shop", "a")!;
    const ann = a.spec.template.metadata.annotations;
    assert.match(ann["sidecar.istio.io/proxyCPU"], /^\d+m$/);
    assert.match(ann["sidecar.istio.io/proxyMemoryLimit"], /^\d+Mi$/);
    assert.ok(a.metadata.managedFields.some((f: { manager: string }) => f.manager === RESOURCES_MANAGER));
    assert.equal(a.spec.selector, { matchLabels: { app: "a" } }, "the rest of the Deployment untouched");
    // b: proxyCPU belongs to its owner → conflict, skipped with the reason, value kept.
    const b = t.fake.get("deployments", "shop", "b")!;
    assert.is(b.spec.template.metadata.annotations["sidecar.istio.io/proxyCPU"], "2");
    assert.not.ok(
      "sidecar.istio.io/proxyMemory" in b.spec.template.metadata.annotations,
      "nothing of the refused patch was written",
    );
    const ob = t.outcome(out, "resources", "Deployment/shop/b")!;
    assert.is(ob.action, "skipped");
    assert.match(ob.reason, /user-owned field.*annotations\.sidecar\.istio\.io\/proxyCPU is "2"/);

    // The gateway terminates TLS and a capable node exists: CryptoMB with a preferred affinity, fallback on.
    const gw = t.fake.get("deployments", "gw", "ingress")!;
    assert.match(
      gw.spec.template.metadata.annotations["proxy.istio.io/config"],
      /cryptomb:\n\s+pollDelay: 10ms\n\s+fallback: true/,
    );
    assert.ok(gw.spec.template.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution);
    assert.not.ok(gw.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution);
    assert.ok(gw.metadata.managedFields.some((f: { manager: string }) => f.manager === CRYPTOMB_MANAGER));
    // Gateways are not sized as sidecars.
    assert.match(
      t.outcome(out, "resources", "gw/ingress")?.reason ?? t.outcome(out, "resources", "Deployment/gw/ingress")!.reason,
      /gateway/,
    );

    // What tuning applied passes istioctl analyze -A (managedFields and status dropped, as kubectl get -o yaml | neat).
    const neat = (o: Record<string, unknown>) => {
      const { managedFields: _m, resourceVersion: _r, uid: _u, ...meta } = o.metadata as Record<string, unknown>;
      return toYaml({ apiVersion: o.apiVersion, kind: o.kind, metadata: meta, spec: o.spec });
    };
    const applied = [
      t.fake.get("virtualservices", "shop", "meshtune-b")!,
      ...(["a", "b"] as const).map((n) => t.fake.get("deployments", "shop", n)!),
      t.fake.get("deployments", "gw", "ingress")!,
      ...["shop"].flatMap((ns) =>
        t.fake.get("destinationrules", ns, "meshtune-b") ? [t.fake.get("destinationrules", ns, "meshtune-b")!] : [],
      ),
    ];
    const msgs = istioctlAnalyze({ "applied.yaml": applied.map(neat).join("---\n") });
    assert.equal(msgs, [], describe(msgs));

    const before = t.writes();
    const again = await t.ctl.tunePass();
    assert.is(
      t.writes(),
      before,
      `second pass wrote: ${JSON.stringify(again.filter((x) => x.action !== "unchanged" && x.action !== "skipped"))}`,
    );
    assert.is(t.outcome(again, "rules", "VirtualService/shop/meshtune-b")!.action, "unchanged");
    assert.is(t.outcome(again, "resources", "Deployment/shop/a")!.action, "unchanged");
  } finally {
    await t.close();
  }
});

test("ownership: a same-named user object is left alone; a user DestinationRule appearing retires meshtune's; opting out withdraws only meshtune's fields", async () => {
  const t = await setup();
  try {
    t.fake.put("virtualservices", {
      apiVersion: "networking.istio.io/v1",
      kind: "VirtualService",
      metadata: { name: "meshtune-c", namespace: "shop" },
      spec: { hosts: ["legacy.example.com"], http: [{ route: [{ destination: { host: "legacy.example.com" } }] }] },
    });
    await new Promise((r) => setTimeout(r, 50));
    const out = await t.ctl.tunePass();
    assert.match(t.outcome(out, "rules", "VirtualService/shop/meshtune-c")!.reason, /user-owned/);
    assert.equal(t.fake.get("virtualservices", "shop", "meshtune-c")!.spec.hosts, ["legacy.example.com"]);
    const dr = t.fake.get("destinationrules", "shop", "meshtune-b");
    assert.ok(dr, "meshtune's DestinationRule for b (connection pool / maxRetries on 1.25)");

    // The user takes over b's traffic policy: the user's object wins, meshtune's goes.
    t.fake.put("destinationrules", {
      apiVersion: "networking.istio.io/v1",
      kind: "DestinationRule",
      metadata: { name: "b-policy", namespace: "shop" },
      spec: { host: "b", trafficPolicy: { tls: { mode: "ISTIO_MUTUAL" } } },
    });
    await new Promise((r) => setTimeout(r, 50));
    const out2 = await t.ctl.tunePass();
    assert.not.ok(t.fake.get("destinationrules", "shop", "meshtune-b"));
    assert.match(
      t.outcome(out2, "rules", "DestinationRule/shop/meshtune-b")!.reason,
      /user DestinationRule now covers/,
    );
    assert.ok(t.fake.get("destinationrules", "shop", "b-policy"), "the user's object untouched");

    // The owner of a adds their own annotation next to meshtune's; then the namespace opts out.
    const a = t.fake.get("deployments", "shop", "a")!;
    a.spec.template.metadata.annotations["team.example.com/owner"] = "payments";
    t.fake.put("deployments", a);
    t.fake.put("namespaces", { metadata: { name: "shop", labels: { "meshtune.io/enabled": "false" } } });
    await new Promise((r) => setTimeout(r, 50));
    const out3 = await t.ctl.tunePass();
    const anns = t.fake.get("deployments", "shop", "a")!.spec.template.metadata.annotations;
    assert.not.ok(
      Object.keys(anns).some((k) => k.startsWith("sidecar.istio.io/")),
      JSON.stringify(anns),
    );
    assert.is(anns["team.example.com/owner"], "payments", "the owner's annotation stays");
    assert.is(t.outcome(out3, "resources", "Deployment/shop/a")!.action, "withdrawn");
    assert.not.ok(t.fake.get("virtualservices", "shop", "meshtune-b"), "meshtune's rules leave an opted-out namespace");
    assert.ok(
      t.fake.get("deployments", "shop", "b")!.spec.template.metadata.annotations["sidecar.istio.io/proxyCPU"] === "2",
    );
  } finally {
    await t.close();
  }
});

test("dry-run sends dryRun=All and writes nothing; the rollout budget is reported, not silently hit", async () => {
  const t = await setup({ dryRun: true, kinds: ["rules", "resources"] });
  try {
    const out = await t.ctl.tunePass();
    const patches = t.fake.requests.filter(
      (r) => r.method === "PATCH" && (r.path.includes("deployments") || r.path.includes("virtualservices")),
    );
    assert.ok(patches.length >= 2);
    for (const p of patches) assert.is(p.query.get("dryRun"), "All");
    assert.not.ok(t.fake.get("virtualservices", "shop", "meshtune-b"));
    assert.not.ok(
      t.fake.get("deployments", "shop", "a")!.spec.template.metadata.annotations["sidecar.istio.io/proxyCPU"],
    );
    assert.ok(out.some((x) => x.action === "applied" && x.dryRun));
  } finally {
    await t.close();
  }
  const u = await setup({ kinds: ["resources"], maxRollouts: 1 });
  try {
    const out = await u.ctl.tunePass();
    assert.is(out.filter((x) => x.action === "applied").length, 1);
    assert.ok(
      out.some((x) => /rollout budget of 1 per pass reached/.test(x.reason)),
      JSON.stringify(out),
    );
  } finally {
    await u.close();
  }
});

test("the fake API server's SSA follows Kubernetes: conflict on another manager's field unless same value or force; omitted fields removed only when solely owned", () => {
  const user = recordUpdate(undefined, deployment("shop", "b", { x: "1" }), "kubectl-client-side-apply");
  const patch = (a: Record<string, string>) => ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "b", namespace: "shop" },
    spec: { template: { metadata: { annotations: a } } },
  });
  const c = serverSideApply(user, patch({ x: "2" }), "meshtune-resources", false);
  assert.ok(
    "conflicts" in c &&
      /conflict with "kubectl-client-side-apply": \.spec\.template\.metadata\.annotations\.x/.test(c.conflicts[0]),
  );
  const shared = serverSideApply(user, patch({ x: "1", y: "3" }), "meshtune-resources", false);
  assert.ok("object" in shared);
  const gone = serverSideApply(
    (shared as { object: Record<string, any> }).object,
    patch({}),
    "meshtune-resources",
    false,
  );
  assert.equal(
    (gone as { object: Record<string, any> }).object.spec.template.metadata.annotations,
    { x: "1" },
    "co-owned x stays, y (meshtune's alone) goes",
  );
  const forced = serverSideApply(user, patch({ x: "2" }), "meshtune-resources", true);
  assert.is((forced as { object: Record<string, any> }).object.spec.template.metadata.annotations.x, "2");
});

test("hysteresis and controllers: ±25 % is not worth a rollout; only Deployments/StatefulSets/DaemonSets are patched", () => {
  assert.ok(
    withinChange(
      { "sidecar.istio.io/proxyCPU": "100m", "sidecar.istio.io/proxyMemory": "128Mi" },
      { "sidecar.istio.io/proxyCPU": "120m", "sidecar.istio.io/proxyMemory": "136Mi" },
      0.25,
    ),
  );
  assert.not.ok(withinChange({ "sidecar.istio.io/proxyCPU": "100m" }, { "sidecar.istio.io/proxyCPU": "200m" }, 0.25));
  assert.not.ok(withinChange({}, { "sidecar.istio.io/proxyCPU": "100m" }, 0.25), "absent: apply");
  assert.equal(controllerOfPod(deploymentPod("shop", "a", "5d9f7c6b8", "x1y2z", { app: "a" })), {
    apiVersion: "apps/v1",
    kind: "Deployment",
    name: "a",
    namespace: "shop",
  });
  assert.equal(
    controllerOfPod({
      metadata: {
        name: "db-0",
        namespace: "shop",
        ownerReferences: [{ kind: "StatefulSet", name: "db", controller: true }],
      },
    }),
    { apiVersion: "apps/v1", kind: "StatefulSet", name: "db", namespace: "shop" },
  );
  assert.match(
    String(
      controllerOfPod({
        metadata: {
          name: "job-x",
          namespace: "shop",
          ownerReferences: [{ kind: "Job", name: "job", controller: true }],
        },
      }),
    ),
    /controlled by Job/,
  );
  assert.match(String(controllerOfPod({ metadata: { name: "bare", namespace: "shop" } })), /no controller/);
});

test("--apply-tuning: known kinds only, apply mode only, each companion flag checked", () => {
  assert.equal(tuningFlags({ applyTuning: ["rules", "cryptomb"], istioVersion: "1.27" }, "apply").applyTuning, [
    "rules",
    "cryptomb",
  ]);
  assert.equal(tuningFlags({ istioVersion: "1.27" }, "apply").istioVersion, [1, 27]);
  assert.throws(
    () => tuningFlags({ applyTuning: ["rulez"] }, "apply"),
    /--apply-tuning rulez: expected a list of rules, resources, cryptomb/,
  );
  assert.throws(() => tuningFlags({ applyTuning: ["rules"] }, "recommend"), /needs --mode apply/);
  assert.throws(() => tuningFlags({ maxRollouts: "-1" }, "apply"), /--max-rollouts -1/);
  assert.throws(() => tuningFlags({ istioVersion: "latest" }, "apply"), /--istio-version latest/);
});

test.run();

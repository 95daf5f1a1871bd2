// Opted-in tuning applied by the controller against a real kube-apiserver, authenticated with the
// controller's own ServiceAccount token under manifests/optional/tuning-apply.yaml
// (test/helpers/tuning-cluster.ts): meshtune's own VirtualServices/DestinationRules only,
// workload patches never forced over a field someone else set, withdrawal removing only meshtune's
// fields, dry-run writing nothing, and the rollout budget. The fake API server's SSA is still
// checked against Kubernetes' rules below (test/k8s/field-ownership.ts).
import { istioctlAnalyze, describe } from "./helpers/istioctl.js";
import { toYaml } from "../controller/k8s/yaml.js";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { tuningCluster, deployment } from "./helpers/tuning-cluster.js";
import { deploymentPod } from "./fixtures/pods.js";
import { withinChange, type TuneKind } from "../controller/tune/apply.js";
import { RESOURCES_MANAGER, CRYPTOMB_MANAGER } from "../controller/tune/apply.js";
import { controllerOfPod } from "../controller/model/identity.js";
import { recordUpdate, serverSideApply } from "./k8s/field-ownership.js";
import { tuningFlags } from "../controller/commands/controller.js";

async function setup(o: { kinds?: TuneKind[]; dryRun?: boolean; maxRollouts?: number } = {}) {
  return tuningCluster(o);
}

test("opted-in tuning: meshtune's own VS/DR and sidecar-resource patches by SSA; a field the user set is never overridden; a second pass writes nothing", async () => {
  const t = await setup();
  try {
    const out = await t.ctl.tunePass();
    const vsB = t.get("virtualservices", "shop", "meshtune-b")!;
    assert.ok(vsB, JSON.stringify(out, null, 1));
    assert.is(vsB.metadata.labels["app.kubernetes.io/managed-by"], "meshtune");
    assert.equal(vsB.spec.hosts, [t.fq("b")]);
    assert.ok(vsB.spec.http[0].timeout, "timeout from the tail");
    assert.ok(vsB.metadata.managedFields.some((f: { manager: string }) => f.manager === "meshtune"));
    assert.is(t.outcome(out, "rules", "VirtualService/shop/meshtune-b")!.action, "applied");

    // a: no one sized it → meshtune's annotations, owned by its own field manager.
    const a = t.get("deployments", "shop", "a")!;
    const ann = a.spec.template.metadata.annotations;
    assert.match(ann["sidecar.istio.io/proxyCPU"], /^\d+m$/);
    assert.match(ann["sidecar.istio.io/proxyMemoryLimit"], /^\d+Mi$/);
    assert.ok(a.metadata.managedFields.some((f: { manager: string }) => f.manager === RESOURCES_MANAGER));
    assert.equal(a.spec.selector, { matchLabels: { app: "a" } }, "the rest of the Deployment untouched");
    // b: proxyCPU belongs to its owner → conflict, skipped with the reason, value kept.
    const b = t.get("deployments", "shop", "b")!;
    assert.is(b.spec.template.metadata.annotations["sidecar.istio.io/proxyCPU"], "2");
    assert.not.ok(
      "sidecar.istio.io/proxyMemory" in b.spec.template.metadata.annotations,
      "nothing of the refused patch was written",
    );
    const ob = t.outcome(out, "resources", "Deployment/shop/b")!;
    assert.is(ob.action, "skipped");
    assert.match(ob.reason, /user-owned field.*annotations\.sidecar\.istio\.io\/proxyCPU is "2"/);

    // The gateway terminates TLS and a capable node exists: CryptoMB with a preferred affinity, fallback on.
    const gw = t.get("deployments", "gw", "ingress")!;
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
      t.get("virtualservices", "shop", "meshtune-b")!,
      ...(["a", "b"] as const).map((n) => t.get("deployments", "shop", n)!),
      t.get("deployments", "gw", "ingress")!,
      ...["shop"].flatMap((ns) =>
        t.get("destinationrules", ns, "meshtune-b") ? [t.get("destinationrules", ns, "meshtune-b")!] : [],
      ),
    ];
    const msgs = istioctlAnalyze({ "applied.yaml": applied.map(neat).join("---\n") });
    assert.equal(msgs, [], describe(msgs));

    assert.equal(t.forbidden(), [], "manifests/optional/tuning-apply.yaml grants what tuning does");
    const before = t.writes().length;
    const again = await t.ctl.tunePass();
    assert.is(
      t.writes().length,
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
    t.put("virtualservices", {
      apiVersion: "networking.istio.io/v1",
      kind: "VirtualService",
      metadata: { name: "meshtune-c", namespace: "shop" },
      spec: { hosts: ["legacy.example.com"], http: [{ route: [{ destination: { host: "legacy.example.com" } }] }] },
    });
    await new Promise((r) => setTimeout(r, 50));
    const out = await t.ctl.tunePass();
    assert.match(t.outcome(out, "rules", "VirtualService/shop/meshtune-c")!.reason, /user-owned/);
    assert.equal(t.get("virtualservices", "shop", "meshtune-c")!.spec.hosts, ["legacy.example.com"]);
    const dr = t.get("destinationrules", "shop", "meshtune-b");
    assert.ok(dr, "meshtune's DestinationRule for b (connection pool / maxRetries on 1.25)");

    // The user takes over b's traffic policy: the user's object wins, meshtune's goes.
    t.put("destinationrules", {
      apiVersion: "networking.istio.io/v1",
      kind: "DestinationRule",
      metadata: { name: "b-policy", namespace: "shop" },
      spec: { host: "b", trafficPolicy: { tls: { mode: "ISTIO_MUTUAL" } } },
    });
    await new Promise((r) => setTimeout(r, 50));
    const out2 = await t.ctl.tunePass();
    assert.not.ok(t.get("destinationrules", "shop", "meshtune-b"));
    assert.match(
      t.outcome(out2, "rules", "DestinationRule/shop/meshtune-b")!.reason,
      /user DestinationRule now covers/,
    );
    assert.ok(t.get("destinationrules", "shop", "b-policy"), "the user's object untouched");

    // The owner of a adds their own annotation next to meshtune's; then the namespace opts out.
    t.annotateTemplate("shop", "a", "team.example.com/owner", "payments");
    t.put("namespaces", { metadata: { name: "shop", labels: { "meshtune.io/enabled": "false" } } });
    await new Promise((r) => setTimeout(r, 50));
    const out3 = await t.ctl.tunePass();
    const anns = t.get("deployments", "shop", "a")!.spec.template.metadata.annotations;
    assert.not.ok(
      Object.keys(anns).some((k) => k.startsWith("sidecar.istio.io/")),
      JSON.stringify(anns),
    );
    assert.is(anns["team.example.com/owner"], "payments", "the owner's annotation stays");
    assert.is(t.outcome(out3, "resources", "Deployment/shop/a")!.action, "withdrawn");
    assert.not.ok(t.get("virtualservices", "shop", "meshtune-b"), "meshtune's rules leave an opted-out namespace");
    assert.ok(
      t.get("deployments", "shop", "b")!.spec.template.metadata.annotations["sidecar.istio.io/proxyCPU"] === "2",
    );
  } finally {
    await t.close();
  }
});

test("dry-run sends dryRun=All and writes nothing; the rollout budget is reported, not silently hit", async () => {
  const t = await setup({ dryRun: true, kinds: ["rules", "resources"] });
  try {
    const out = await t.ctl.tunePass();
    const patches = t.writes().filter((w) => w.verb === "patch" && /deployments|virtualservices/.test(w.uri));
    assert.ok(patches.length >= 2);
    for (const p of patches) assert.match(p.uri, /dryRun=All/);
    assert.not.ok(t.get("virtualservices", "shop", "meshtune-b"));
    assert.not.ok(
      t.get("deployments", "shop", "a")!.spec.template.metadata.annotations?.["sidecar.istio.io/proxyCPU"],
      "no annotation (the real server drops the empty map)",
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

// The node agent's Kubernetes side against a real kube-apiserver, authenticated with a token of
// the manifests' meshtune-node ServiceAccount (manifests/rbac.yaml decides): node feature labels by
// server-side apply without force (another manager's label is never taken; a conflict surfaces),
// the status ConfigMap owned by the Node, and the node-scoped pod watch (fieldSelector
// spec.nodeName) the agent runs. Moved here from the fake API server (test/node-features.test.ts
// keeps the probe and the recorded-kernel cases, which need no API server).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CoreV1Api, PatchStrategy, type V1Pod } from "@kubernetes/client-node";
import { realApiServer, type RealApiServer } from "./helpers/kube-apiserver.js";
import { nodeInputs } from "./fixtures/node-inputs.js";
import { loadKubeConfig, objectApi } from "../controller/k8s/kube.js";
import { watchResource } from "../controller/k8s/informer.js";
import { evaluate } from "../controller/node/features.js";
import { publishNodeFeatures } from "../controller/node/publish.js";
import { LABEL } from "../controller/node/labels.js";

let k: RealApiServer;
const inputs = nodeInputs;
const json = (args: string[]) => JSON.parse(k.kubectl([...args, "-o", "json"]));
const node = (name: string) =>
  JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name, labels: { "kubernetes.io/hostname": name } } });

test.before(async () => {
  k = await realApiServer();
  k.installManifests();
});

test("node features by the agent's own token: labels by SSA without force, NFD's labels untouched, conflicts surface, status owned by the Node", async () => {
  k.kubectl(["apply", "--server-side", "--field-manager=kubelet", "-f", "-"], node("n1"));
  // NFD owns its cpuid label on this node: meshtune must not take it.
  k.kubectl(
    ["apply", "--server-side", "--field-manager=nfd-worker", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "n1", labels: { "feature.node.kubernetes.io/cpu-cpuid.AVX512F": "true" } },
    }),
  );
  const token = k.token("meshtune-system", "meshtune-node");
  const api = objectApi(loadKubeConfig({ file: k.kubeconfigFor(token, "meshtune-node") }));
  // NFD absent by meshtune's reading (no NFD labels passed): it writes NFD's cpuid names itself; on
  // the label nfd-worker already set to the same value the real server shares ownership, no conflict.
  await publishNodeFeatures(api, "n1", "meshtune-system", evaluate(inputs({})));
  let n = json(["get", "node", "n1", "--show-managed-fields"]);
  assert.is(n.metadata.labels[LABEL.cryptomb], "true", JSON.stringify(n.metadata.labels));
  assert.is(n.metadata.labels["kubernetes.io/hostname"], "n1", "the kubelet's label untouched");
  const managers = n.metadata.managedFields.map((f: { manager: string }) => f.manager);
  assert.ok(managers.includes("nfd-worker") && managers.includes("kubelet"), managers.join(","));
  const cm = json(["get", "configmap", "-n", "meshtune-system", "meshtune-node-n1"]);
  assert.equal(cm.metadata.ownerReferences, [{ apiVersion: "v1", kind: "Node", name: "n1", uid: n.metadata.uid }]);
  assert.is(JSON.parse(cm.data["features.json"]).cryptomb.capable, true);

  // An admin takes meshtune.io/cryptomb=false by force (the real server refuses otherwise): the agent's apply conflicts
  // (the real server's 409 names the field), it never overwrites.
  k.kubectl(
    ["apply", "--server-side", "--force-conflicts", "--field-manager=admin", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: "n1", labels: { [LABEL.cryptomb]: "false" } } }),
  );
  const err = await publishNodeFeatures(api, "n1", "meshtune-system", evaluate(inputs({}))).catch((e) => e);
  assert.ok(err instanceof Error, "the conflict surfaces");
  assert.match(`${err.message} ${JSON.stringify((err as { body?: unknown }).body ?? "")}`, /conflict|409/i);
  n = json(["get", "node", "n1"]);
  assert.is(n.metadata.labels[LABEL.cryptomb], "false");
  // Nothing the agent did was forbidden.
  const denied = k.audited("system:serviceaccount:meshtune-system:meshtune-node").filter((a) => a.code === 403);
  assert.equal(denied, [], JSON.stringify(denied));
  assert.ok(PatchStrategy.ServerSideApply);
});

test("the agent's pod watch sees only its node's pods, as the real server filters spec.nodeName", async () => {
  k.kubectl(["create", "namespace", "agent-watch"]);
  // No controller-manager runs here: the namespace's default ServiceAccount is created by hand.
  k.kubectl(["create", "serviceaccount", "default", "-n", "agent-watch"]);
  const pod = (name: string, nodeName: string) =>
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: "agent-watch" },
      spec: { nodeName, containers: [{ name: "app", image: "app:1" }] },
    });
  k.kubectl(["apply", "-f", "-"], pod("on-a-1", "node-a"));
  k.kubectl(["apply", "-f", "-"], pod("on-b-1", "node-b"));
  const kc = loadKubeConfig({ file: k.kubeconfigFor(k.token("meshtune-system", "meshtune-node"), "meshtune-node") });
  const core = kc.makeApiClient(CoreV1Api);
  const seen = new Set<string>();
  let stopped = false;
  const fieldSelector = "spec.nodeName=node-a";
  const w = watchResource<V1Pod>(
    kc,
    `/api/v1/pods?fieldSelector=${encodeURIComponent(fieldSelector)}`,
    () => core.listPodForAllNamespaces({ fieldSelector }),
    (_t, p) => seen.add(p.metadata!.name!),
    () => {},
    () => stopped,
    "Pod",
  );
  try {
    await w.synced;
    assert.ok(seen.has("on-a-1") && !seen.has("on-b-1"), [...seen].join(","));
    k.kubectl(["apply", "-f", "-"], pod("on-a-2", "node-a"));
    k.kubectl(["apply", "-f", "-"], pod("on-b-2", "node-b"));
    const end = Date.now() + 15_000;
    while (!seen.has("on-a-2") && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.ok(seen.has("on-a-2"), "a new pod on its node arrives by watch");
    assert.not.ok(
      [...seen].some((n) => n.startsWith("on-b")),
      "no other node's pod ever arrives",
    );
  } finally {
    stopped = true;
    await w.informer.stop();
  }
});

test.run();

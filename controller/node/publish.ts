// Publishing a node's features: labels on the Node and a status ConfigMap, both by server-side
// apply. Labels are applied without force, field manager "meshtune-agent": SSA then owns exactly
// the label keys applied, removes the ones a later apply leaves out, and refuses (409) to take a
// key another manager owns (NFD, an admin) instead of overwriting it (Kubernetes docs,
// "Server-Side Apply": conflicts, and "fields removed from the applied configuration are removed
// when no other manager owns them"). The ConfigMap meshtune-node-<node> in the agent's namespace
// carries the full result (features.json); its ownerReference to the Node lets the garbage
// collector delete it with the node.
import { PatchStrategy, type KubernetesObjectApi } from "@kubernetes/client-node";
import { nodeLabels } from "./labels.js";
import type { NodeFeatures } from "./features.js";

export const AGENT_FIELD_MANAGER = "meshtune-agent";
export const statusName = (node: string) => `meshtune-node-${node}`.slice(0, 253);

export function statusConfigMap(
  node: string,
  nodeUid: string | undefined,
  namespace: string,
  f: NodeFeatures,
  at: Date,
) {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: statusName(node),
      namespace,
      labels: { "app.kubernetes.io/managed-by": "meshtune", "meshtune.io/node-status": "true" },
      ...(nodeUid ? { ownerReferences: [{ apiVersion: "v1", kind: "Node", name: node, uid: nodeUid }] } : {}),
    },
    data: {
      node,
      updated: at.toISOString(),
      datapath: f.datapath.ok ? "enabled" : `disabled: ${f.datapath.reason}`,
      tcpstats:
        f.datapath.ok && f.tcpstats.ok
          ? "enabled"
          : `disabled: ${!f.datapath.ok ? "needs the datapath" : f.tcpstats.reason}`,
      splice:
        f.datapath.ok && f.splice.ok
          ? "enabled"
          : `disabled: ${!f.datapath.ok ? "needs the datapath" : f.splice.reason}`,
      ambient:
        f.datapath.ok && f.ambient.ok
          ? "enabled"
          : `disabled: ${!f.datapath.ok ? "needs the datapath" : f.ambient.reason}; istio-cni keeps ambient pods`,
      cryptomb: f.cryptomb.capable ? "capable" : `incapable: missing ${f.cryptomb.missing.join(", ")}`,
      "features.json": JSON.stringify(f, null, 1),
    },
  };
}

export async function publishNodeFeatures(
  api: KubernetesObjectApi,
  node: string,
  namespace: string,
  f: NodeFeatures,
  now = new Date(),
): Promise<{ labels: Record<string, string> }> {
  const labels = nodeLabels(f);
  const applied = await api.patch(
    { apiVersion: "v1", kind: "Node", metadata: { name: node, labels } },
    undefined,
    undefined,
    AGENT_FIELD_MANAGER,
    false,
    PatchStrategy.ServerSideApply,
  );
  await api.patch(
    statusConfigMap(node, (applied.metadata as { uid?: string } | undefined)?.uid, namespace, f, now),
    undefined,
    undefined,
    AGENT_FIELD_MANAGER,
    true,
    PatchStrategy.ServerSideApply,
  );
  return { labels };
}

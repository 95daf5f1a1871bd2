// One workload's reconcile: its pods' common selector and proxy kind, its learned hosts, the
// Sidecars already in its namespace (and the namespace default), decide.ts's decision, carried
// out by the writer; a workload still in its observation window is requeued for when it ends.
import { proxyOfPod, selectorOfPod } from "../model/identity.js";
import { namespaceDefault } from "../sidecar/namespace-default.js";
import { FIELD_MANAGER } from "../k8s/kube.js";
import type { LearnedStore } from "../k8s/learned-store.js";
import type { Graph } from "../model/graph.js";
import { decide, CARRIED, MANAGED_LABEL, type ExistingSidecar } from "./decide.js";
import type { ClusterView } from "./cluster-view.js";
import type { SidecarWriter } from "./sidecar-writer.js";
import type { ControllerOptions } from "./options.js";
import { learnedHosts } from "./learned-flush.js";
import { enabledFor } from "./tuning-loop.js";

export interface ReconcileContext {
  view: ClusterView;
  graph: Graph;
  store: LearnedStore;
  o: ControllerOptions;
  writer: SidecarWriter;
  now: () => number;
}

export async function reconcileWorkload(
  c: ReconcileContext,
  key: string,
  persist: () => void,
  requeueAfter: (key: string, ms: number) => void,
): Promise<void> {
  const [ns, name] = key.split("/");
  const pods = [...(c.view.pods.get(key)?.values() ?? [])];
  const existing: ExistingSidecar[] = [...(c.view.sidecars.get(ns)?.values() ?? [])].map((s) => ({
    name: s.metadata!.name!,
    managed: s.metadata?.labels?.[MANAGED_LABEL] === FIELD_MANAGER,
    hosts: s.spec?.egress?.[0]?.hosts ?? [],
    selector: s.spec?.workloadSelector?.labels ?? null,
    carried: s.metadata?.annotations?.[CARRIED]?.split(",").filter(Boolean),
  }));
  if (pods.length === 0) {
    // Workload gone: clean up what we generated for it.
    const mine = existing.find((s) => s.name === name && s.managed);
    if (mine) await c.writer.act(ns, name, { action: "delete", name, reason: "workload has no pods" });
    return;
  }
  // Selector: the pod template's labels common to every pod of the workload (a rollout may differ).
  const sels = pods.map((p) => selectorOfPod(p));
  const selector = Object.fromEntries(Object.entries(sels[0]).filter(([k, v]) => sels.every((s) => s[k] === v)));
  const proxy = proxyOfPod(pods[0]);
  const scope = c.view.scope();
  const learned = learnedHosts(c.graph, c.store, ns, name, scope);
  // Persist on its own schedule: a Sidecar write that fails below must not hold learned state back.
  persist();
  const d = decide(
    {
      namespace: ns,
      name,
      selector,
      podLabels: pods[0].metadata?.labels ?? {},
      enabled: enabledFor(c.view, ns, pods, c.o.defaultEnabled),
      nonSidecar: proxy.kind === "sidecar" ? undefined : `${proxy.kind} (${proxy.why})`,
      observedSinceMs: learned.since,
      learned: learned.hosts,
      namespaceDefault: namespaceDefault(
        (n) => [...(c.view.sidecars.get(n)?.values() ?? [])],
        ns,
        scope.mesh.rootNamespace,
        (s) => s.metadata?.labels?.[MANAGED_LABEL] === FIELD_MANAGER,
      ),
    },
    existing,
    { ...c.o, scope },
    c.now(),
  );
  await c.writer.act(ns, name, d);
  // Come back when the observation window will have passed (first-seen is the collector's clock).
  if (d.action === "skip" && d.reason.startsWith("observing") && learned.since !== null)
    requeueAfter(key, learned.since + c.o.minWindowMs - c.now() + 100);
}

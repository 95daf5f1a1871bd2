// One workload's reconcile: its pods' common selector and proxy kind, its learned hosts, the
// Sidecars already in its namespace (and the namespace default), decide.ts's decision, carried
// out by the writer; a workload still in its observation window is requeued for when it ends.
import { proxyOfPod, selectorOfPod } from "../model/identity.js";
import { namespaceDefault } from "../sidecar/namespace-default.js";
import type { LearnedStore } from "../k8s/learned-store.js";
import type { Graph } from "../model/graph.js";
import { decide, isManaged, CARRIED, type ExistingSidecar } from "./decide.js";
import type { ClusterView, Obj } from "./cluster-view.js";
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

const existingOf = (s: Obj): ExistingSidecar => ({
  name: s.metadata!.name!,
  managed: isManaged(s),
  hosts: s.spec?.egress?.[0]?.hosts ?? [],
  selector: s.spec?.workloadSelector?.labels ?? null,
  carried: s.metadata?.annotations?.[CARRIED]?.split(",").filter(Boolean),
});

export async function reconcileWorkload(
  c: ReconcileContext,
  key: string,
  persist: () => void,
  requeueAfter: (key: string, ms: number) => void,
): Promise<void> {
  const [ns, name] = key.split("/");
  const pods = [...(c.view.pods.get(key)?.values() ?? [])];
  // decide() looks at the workload's own Sidecar and at the user's with a selector; the
  // namespace's other managed Sidecars (one per workload) never change its answer, so they are
  // not read, which keeps a namespace's reconcile linear rather than quadratic.
  const own = c.view.sidecars.get(ns)?.get(name);
  const existing: ExistingSidecar[] = own ? [existingOf(own)] : [];
  for (const s of c.view.userSidecars.get(ns)?.values() ?? [])
    if (s !== own && s.spec?.workloadSelector?.labels) existing.push(existingOf(s));
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
        (n) => c.view.userSidecars.get(n)?.values() ?? [],
        ns,
        scope.mesh.rootNamespace,
        isManaged,
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

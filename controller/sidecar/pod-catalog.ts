// Pods from an offline catalog (`kubectl get pods -A -o json`, or YAML): per pod name, the
// namespace, workload, selector labels and proxy kind the cluster itself says (model/identity.ts).
import { proxyOfPod, selectorOfPod, workloadOfPod, type ProxyInfo } from "../model/identity.js";

export interface PodFacts {
  namespace: string;
  workload: string;
  labels: Record<string, string>;
  proxy: ProxyInfo;
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export class PodCatalog {
  private readonly byName = new Map<string, PodFacts[]>();
  constructor(items: Obj[]) {
    for (const it of items) {
      if (it?.kind !== "Pod" || typeof it.metadata?.name !== "string") continue;
      const f: PodFacts = {
        namespace: it.metadata.namespace ?? "default",
        workload: workloadOfPod(it),
        labels: selectorOfPod(it),
        proxy: proxyOfPod(it),
      };
      const list = this.byName.get(it.metadata.name) ?? [];
      list.push(f);
      this.byName.set(it.metadata.name, list);
    }
  }
  get size(): number {
    return this.byName.size;
  }
  /** The facts by pod name, as plain data (to hand to a worker thread). */
  facts(): [string, PodFacts[]][] {
    return [...this.byName];
  }
  static fromFacts(facts: [string, PodFacts[]][]): PodCatalog {
    const c = new PodCatalog([]);
    for (const [name, list] of facts) c.byName.set(name, list);
    return c;
  }
  /** The pod's facts; `ambiguous` when the name exists in several namespaces and no vote decides. */
  lookup(pod: string, votedNs: string | null): PodFacts | { ambiguous: true } | null {
    const l = this.byName.get(pod);
    if (!l) return null;
    if (l.length === 1) return l[0];
    return l.find((f) => f.namespace === votedNs) ?? { ambiguous: true };
  }
}

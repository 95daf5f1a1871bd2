// Tuning from what is learned now: recommendations on demand (rules, resources, discovery scope,
// CryptoMB; never applied), and, for opted-in kinds in apply mode, one pass at a time applied
// under tune/apply.ts's ownership and safety rules, each outcome logged and counted.
import type { KubernetesObjectApi, V1Pod } from "@kubernetes/client-node";
import type { Counter } from "prom-client";
import type { Graph } from "../model/graph.js";
import { controllerOfPod, proxyOfPod } from "../model/identity.js";
import { tune, userRuleHosts, type Tuning } from "../tune/tune.js";
import { TuningApplier, type TuneKind, type TuneOutcome, type TuneWorld } from "../tune/apply.js";
import type { Savings } from "../sidecar/savings.js";
import type { LearnedStore } from "../k8s/learned-store.js";
import type { ClusterView, Obj } from "./cluster-view.js";
import type { Logger } from "../log.js";

export const ENABLED = "meshtune.io/enabled";

/** Opt-in resolved: a pod's annotation, else its namespace's label, else the default. */
export function enabledFor(view: ClusterView, ns: string, pods: V1Pod[], dflt: boolean): boolean {
  for (const p of pods) {
    const a = p.metadata?.annotations?.[ENABLED];
    if (a === "true" || a === "false") return a === "true";
  }
  const l = view.namespaces.get(ns)?.metadata?.labels?.[ENABLED];
  if (l === "true" || l === "false") return l === "true";
  return dflt;
}

export interface TuningOptions {
  applyTuning?: TuneKind[];
  mode: "apply" | "recommend";
  dryRun: boolean;
  maxRollouts?: number;
  istioVersion?: [number, number];
  tuneMinRequests?: number;
  defaultEnabled: boolean;
  minWindowMs: number;
  clusterDomain: string;
}

export class TuningLoop {
  /** The last pass's outcome per object (served on /recommendations as tuningApplied). */
  outcomes: TuneOutcome[] = [];
  private running = false;

  constructor(
    private readonly api: KubernetesObjectApi,
    private readonly view: ClusterView,
    private readonly graph: Graph,
    private readonly store: LearnedStore,
    private readonly o: TuningOptions,
    private readonly applied: Counter<"kind" | "action">,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /** Recommendations over `graph` (a bounded read view: reconcile/read-view.ts), default the whole graph. */
  tuning(o: { istioVersion: [number, number]; minRequests: number }, savings: Savings[], graph = this.graph): Tuning {
    const v = this.view;
    const items = [
      ...v.catalogObjects.values(),
      ...v.ruleObjects.values(),
      ...v.nodes.values(),
      ...[...v.namespaces.values()].map((n) => ({ ...n, kind: "Namespace" })),
      ...[...v.pods.values()].flatMap((m) => [...m.values()].map((p) => ({ ...p, kind: "Pod" }))),
    ] as Obj[];
    return tune({
      graph,
      services: v.catalogNow(),
      items,
      savings,
      domain: this.o.clusterDomain,
      istioVersion: o.istioVersion,
      minRequests: o.minRequests,
    });
  }

  /** One opted-in pass (the caller runs it only while leading; never two at once). */
  async pass(savings: () => Savings[]): Promise<TuneOutcome[]> {
    const kinds = this.o.applyTuning ?? [];
    if (this.running || !kinds.length || this.o.mode !== "apply") return [];
    this.running = true;
    try {
      const t = this.tuning(
        { istioVersion: this.o.istioVersion ?? [1, 25], minRequests: this.o.tuneMinRequests ?? 100 },
        savings(),
      );
      const applier = new TuningApplier(this.api, {
        kinds: new Set(kinds),
        dryRun: this.o.dryRun,
        maxRollouts: this.o.maxRollouts ?? 5,
      });
      const out = await applier.run(t, this.world());
      for (const r of out) {
        this.applied.inc({ kind: r.kind, action: r.action });
        if (r.action !== "unchanged")
          this.log(r.action === "failed" ? "warn" : "info", `tuning ${r.action}`, {
            kind: r.kind,
            object: r.object,
            reason: r.reason,
            dryRun: this.o.dryRun,
          });
      }
      this.outcomes = out;
      return out;
    } catch (e) {
      this.log("error", "tuning pass failed; next pass retries", { error: (e as Error).message });
      return [];
    } finally {
      this.running = false;
    }
  }

  private world(): TuneWorld {
    const v = this.view;
    const items = [...v.ruleObjects.values()];
    return {
      namespaceEnabled: (ns) => enabledFor(v, ns, [], this.o.defaultEnabled), // the namespace label alone
      workloadReady: (key, proxies) => {
        const pods = [...(v.pods.get(key)?.values() ?? [])];
        if (!pods.length) return `no pods of ${key}`;
        if (!enabledFor(v, key.split("/")[0], pods, this.o.defaultEnabled))
          return `${key} not opted in (meshtune.io/enabled)`;
        const proxy = proxyOfPod(pods[0]);
        if (!proxies.includes(proxy.kind))
          return `${key} is a ${proxy.kind} (${proxy.why}), not a ${proxies.join(" or ")}`;
        const since = this.store.get(key.split("/")[0], key.split("/")[1])?.observedSinceMs ?? null; // set by reconcile from the first report
        if (since === null || this.now() - since < this.o.minWindowMs) return "observing: minimum window not reached";
        return true;
      },
      controllerOf: (key) => {
        const p = v.pods.get(key)?.values().next().value;
        return p ? controllerOfPod(p) : `no pods of ${key}`;
      },
      rules: () => items,
      userHosts: (kind) => userRuleHosts(items, kind, this.o.clusterDomain),
      serviceExists: (host) => v.catalogNow().some((s) => s.host === host),
    };
  }
}

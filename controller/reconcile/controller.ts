// The in-cluster loop: informers on Namespaces, Pods, Sidecars, Services, ServiceEntries,
// VirtualServices and the mesh config, run on every replica (each is Ready after its own sync);
// a keyed queue per namespace/workload whose work runs only while this replica leads (Istio's
// leaderelection AddRunFunction semantics: leadership starts/stops the work, never the process);
// decisions from decide.ts; Sidecars written by server-side apply (field manager "meshtune").
import { namespaceDefault } from "../sidecar/namespace-default.js";
import type { DiagnoseStore } from "../diagnose/store.js";
import { watchResource, type WatchEvent } from "../k8s/informer.js";
import {
  type KubeConfig,
  type KubernetesObject,
  type KubernetesObjectApi,
  type V1Namespace,
  type V1Pod,
  type Informer,
} from "@kubernetes/client-node";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Graph, Stats } from "../model/graph.js";
import { controllerOfPod, proxyOfPod, selectorOfPod, workloadOfPod } from "../model/identity.js";
import { generateSidecars, type GenerateResult, type SidecarObj } from "../sidecar/generate.js";
import { hostsOfEdge, hostsOfUnknown, type ScopeContext } from "../sidecar/scope.js";
import { HostIndex } from "../istio/hosts.js";
import { tune, userRuleHosts, type Tuning } from "../tune/tune.js";
import { TuningApplier, type TuneKind, type TuneOutcome, type TuneWorld } from "../tune/apply.js";
import { meshFromObject } from "../istio/mesh-config.js";
import { virtualServiceRef, type VirtualServiceRef } from "../istio/virtual-services.js";
import { parse as parseYaml } from "yaml";
import { validateSidecar } from "../sidecar/validate.js";
import {
  decide,
  ANNOTATION,
  MANAGED_LABEL,
  type DecideOptions,
  type ExistingSidecar,
  type HostSeen,
  type Decision,
} from "./decide.js";
import { parseCatalog, type CatalogService } from "../sidecar/catalog.js";
import { estimateSavings, type Savings } from "../sidecar/savings.js";
import { WorkQueue } from "./queue.js";
import { apply, FIELD_MANAGER, isNotFound } from "../k8s/kube.js";
import { LearnedStore } from "../k8s/learned-store.js";
import type { Logger } from "../log.js";
import type { Binder, Fail } from "../collector/server.js";
import type { FallbackReport } from "../collector/fallback-report.js";
import type { AgentReport } from "../collector/agent-report.js";
import { fqdnError } from "../istio/validate.js";
import { emptyStats } from "../model/graph.js";

export const ENABLED = "meshtune.io/enabled";

/** What a Sidecar change does to its host list (dry-run diff and apply logs). */
export function hostDiff(before: string[], after: string[]): { added: string[]; removed: string[] } {
  const b = new Set(before),
    a = new Set(after);
  return { added: after.filter((h) => !b.has(h)), removed: before.filter((h) => !a.has(h)) };
}

export interface ControllerOptions extends DecideOptions {
  defaultEnabled: boolean;
  dryRun: boolean;
  clusterDomain: string;
  flushDelayMs?: number; // batch window for learned-state writes (default 2 s)
  resyncMs?: number; // every workload is reconciled at least this often while leading (default 5 min)
  relistMs?: number; // every informer relists this often (jittered), repairing a silently stalled watch (default 5 min)
  /** The mesh config ConfigMap ("istio-system/istio"; key `mesh`). */
  meshConfigMap?: string;
  now?: () => number;
  /** Opted-in tuning to apply (tune/apply.ts); none by default: tuning is recommend-only. */
  applyTuning?: TuneKind[];
  tuneIntervalMs?: number; // default 10 min
  maxRollouts?: number; // pod-template patches per pass (default 5)
  istioVersion?: [number, number];
  tuneMinRequests?: number; // default 100
}

type Obj = KubernetesObject & { spec?: any; data?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

export class MeshController {
  /** Indexed for reconcile: pods by "ns/workload" then pod name; Sidecars by namespace then name. */
  readonly pods = new Map<string, Map<string, V1Pod>>();
  /** Pods by address (status.podIPs; host-network pods share the node's and are left out): who a fallback's caller is. */
  readonly podsByIp = new Map<string, V1Pod>();
  /** "namespace/name" -> pod: agent reports name pods, not workloads. */
  private readonly podsByName = new Map<string, V1Pod>();
  readonly namespaces = new Map<string, V1Namespace>();
  readonly sidecars = new Map<string, Map<string, Obj>>();
  /** Services and ServiceEntries: the live catalog behind each Sidecar's savings estimate. */
  readonly catalogObjects = new Map<string, Obj>();
  private catalog: CatalogService[] | null = null;
  readonly virtualServices = new Map<string, VirtualServiceRef>();
  /** VirtualServices and DestinationRules, whole ("Kind/ns/name"): user rules are never overridden. */
  readonly ruleObjects = new Map<string, Obj>();
  /** Nodes (their meshtune.io/ feature labels decide CryptoMB). */
  readonly nodes = new Map<string, Obj>();
  /** The last tuning pass's outcome per object (served on /recommendations as tuningApplied). */
  tuneOutcomes: TuneOutcome[] = [];
  private tuneTimer: NodeJS.Timeout | null = null;
  private tuneRunning = false;
  /** Whether this replica holds the lease: only then does queued work run. */
  leading = false;
  readonly queue: WorkQueue;
  readonly decisions = new Map<string, Decision>(); // last decision per workload (status / recommend-only report)
  ready = false;
  private stopped = false;
  private informers: Informer<KubernetesObject>[] = [];
  private readonly applied: Counter<"action">;
  private readonly errors: Counter;
  private readonly workloads: Gauge;
  private readonly rejectedHosts: Counter;
  private readonly saveErrors: Counter;
  private readonly rejectedSeen = new Map<string, string>();
  private readonly tuneApplied: Counter<"kind" | "action">;

  constructor(
    private readonly kc: KubeConfig,
    private readonly api: KubernetesObjectApi,
    readonly graph: Graph,
    readonly store: LearnedStore,
    private readonly o: ControllerOptions,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.queue = new WorkQueue(
      (k) => this.reconcile(k),
      (k, e) => {
        this.errors.inc();
        this.log("error", "reconcile failed; will retry", { workload: k, error: (e as Error).message });
      },
    );
    this.applied = new Counter({
      name: "meshtune_reconcile_total",
      help: "Reconcile outcomes",
      labelNames: ["action"],
      registers: [registry],
    });
    this.errors = new Counter({
      name: "meshtune_reconcile_errors_total",
      help: "Reconcile failures (retried)",
      registers: [registry],
    });
    this.tuneApplied = new Counter({
      name: "meshtune_tuning_apply_total",
      help: "Opted-in tuning outcomes per object (applied, unchanged, skipped with a reason, deleted, withdrawn, failed)",
      labelNames: ["kind", "action"],
      registers: [registry],
    });
    this.saveErrors = new Counter({
      name: "meshtune_learned_save_errors_total",
      help: "Failed learned-state saves (each is retried with backoff)",
      registers: [registry],
    });
    this.rejectedHosts = new Counter({
      name: "meshtune_hosts_rejected_total",
      help: "Candidate Sidecar hosts that failed Istio validation (never applied)",
      registers: [registry],
    });
    this.workloads = new Gauge({
      name: "meshtune_workloads",
      help: "Workloads known from pods",
      registers: [registry],
      collect: () => this.workloads.set(this.workloadKeys().length),
    });
  }

  private now() {
    return this.o.now?.() ?? Date.now();
  }

  workloadKeys(): string[] {
    return [...this.pods.keys()];
  }

  private indexObj<T extends KubernetesObject>(
    m: Map<string, Map<string, T>>,
    outer: string,
    inner: string,
    o: T | null,
  ): void {
    let g = m.get(outer);
    if (!g) m.set(outer, (g = new Map()));
    if (o) g.set(inner, o);
    else {
      g.delete(inner);
      if (g.size === 0) m.delete(outer);
    }
  }

  private enqueueNamespace(ns: string): void {
    for (const k of this.workloadKeys()) if (k.startsWith(`${ns}/`)) this.queue.add(k);
  }

  private sidecar(ns: string, name: string): Obj | undefined {
    return this.sidecars.get(ns)?.get(name);
  }

  /** Start informers; ready once each has listed and persisted state is loaded. */
  async start(): Promise<void> {
    // Ready means every informer has listed once (k8s/informer.ts).
    const watch = <T extends KubernetesObject>(
      path: string,
      list: () => Promise<{ items: T[] }>,
      on: (type: WatchEvent, o: T) => void,
      kind?: string,
    ) => {
      const w = watchResource<T>(this.kc, path, list, on, this.log, () => this.stopped, kind, this.o.relistMs);
      this.informers.push(w.informer as unknown as Informer<KubernetesObject>);
      return w.synced;
    };
    await Promise.all([
      watch<V1Namespace>(
        "/api/v1/namespaces",
        () => this.api.list("v1", "Namespace"),
        (t, o) => {
          if (t === "delete") this.namespaces.delete(o.metadata!.name!);
          else this.namespaces.set(o.metadata!.name!, o);
          this.enqueueNamespace(o.metadata!.name!);
        },
      ),
      watch<V1Pod>(
        "/api/v1/pods",
        () => this.api.list("v1", "Pod"),
        (t, o) => {
          const k = `${o.metadata!.namespace}/${workloadOfPod(o)}`;
          this.indexObj(this.pods, k, o.metadata!.name!, t === "delete" ? null : o);
          const byName = `${o.metadata!.namespace}/${o.metadata!.name}`;
          if (t === "delete") this.podsByName.delete(byName);
          else this.podsByName.set(byName, o);
          if (!o.spec?.hostNetwork)
            for (const ip of [o.status?.podIP, ...(o.status?.podIPs ?? []).map((p) => p.ip)]) {
              if (!ip) continue;
              if (t === "delete") {
                if (this.podsByIp.get(ip)?.metadata?.uid === o.metadata?.uid) this.podsByIp.delete(ip);
              } else this.podsByIp.set(ip, o);
            }
          this.queue.add(k);
        },
      ),
      watch<Obj>(
        "/apis/networking.istio.io/v1beta1/sidecars",
        () => this.api.list("networking.istio.io/v1beta1", "Sidecar"),
        (t, o) => {
          this.indexObj(this.sidecars, o.metadata!.namespace!, o.metadata!.name!, t === "delete" ? null : o);
          // A user Sidecar can block several workloads of its namespace: recheck them all; a
          // root-namespace default concerns every namespace.
          const ns = o.metadata!.namespace!;
          if (ns === this.scope().mesh.rootNamespace) for (const k of this.workloadKeys()) this.queue.add(k);
          else this.enqueueNamespace(ns);
        },
      ),
      watch<Obj>(
        "/api/v1/services",
        () => this.api.list("v1", "Service"),
        (t, o) => this.catalogChanged(t, o),
        "Service",
      ),
      watch<Obj>(
        "/apis/networking.istio.io/v1beta1/serviceentries",
        () => this.api.list("networking.istio.io/v1beta1", "ServiceEntry"),
        (t, o) => this.catalogChanged(t, o),
        "ServiceEntry",
      ),
      watch<Obj>(
        "/apis/networking.istio.io/v1beta1/virtualservices",
        () => this.api.list("networking.istio.io/v1beta1", "VirtualService"),
        (t, o) => {
          const k = `${o.metadata?.namespace}/${o.metadata?.name}`;
          const ref = t === "delete" ? null : virtualServiceRef(o, this.o.clusterDomain);
          this.ruleChanged(t, { ...o, kind: "VirtualService" });
          if (ref) this.virtualServices.set(k, ref);
          else this.virtualServices.delete(k);
          this.scopeNow = null;
          this.enqueueAll(); // any workload may route through it
        },
      ),
      watch<Obj>(
        "/apis/networking.istio.io/v1beta1/destinationrules",
        () => this.api.list("networking.istio.io/v1beta1", "DestinationRule"),
        (t, o) => this.ruleChanged(t, { ...o, kind: "DestinationRule" }),
        "DestinationRule",
      ),
      watch<Obj>(
        "/api/v1/nodes",
        () => this.api.list("v1", "Node"),
        (t, o) => {
          if (t === "delete") this.nodes.delete(o.metadata!.name!);
          else this.nodes.set(o.metadata!.name!, { ...o, kind: "Node" });
        },
        "Node",
      ),
      watch<Obj>(
        `/api/v1/namespaces/${this.meshCm[0]}/configmaps`,
        () => this.api.list("v1", "ConfigMap", this.meshCm[0]),
        (t, o) => {
          if (o.metadata?.name !== this.meshCm[1]) return;
          this.meshChanged(t === "delete" ? null : o);
        },
      ),
    ]);
    await this.loadStore();
    this.ready = true;
    if (this.leading) this.enqueueAll();
  }

  private async loadStore(): Promise<void> {
    for (const ns of this.namespaces.keys())
      await this.store
        .load(ns)
        .catch((e) => this.log("warn", "could not load learned state", { namespace: ns, error: (e as Error).message }));
  }

  private enqueueAll(): void {
    if (this.ready && this.leading) for (const k of this.workloadKeys()) this.queue.add(k);
  }

  /** Leadership gained: resume from what the previous leader persisted, then reconcile everything. */
  async startLeading(): Promise<void> {
    this.leading = true;
    // Periodic resync (client-go resync period): dependencies age out of retention with no event.
    this.resync ??= setInterval(() => this.enqueueAll(), this.o.resyncMs ?? 5 * 60_000);
    if (this.o.applyTuning?.length && this.o.mode === "apply")
      this.tuneTimer ??= setInterval(() => void this.tunePass(), this.o.tuneIntervalMs ?? 10 * 60_000);
    if (!this.ready) return; // start() enqueues after its sync
    await this.loadStore();
    this.enqueueAll();
  }

  /** Leadership lost: stop writing; keep serving, collecting and watching. */
  stopLeading(): void {
    this.leading = false;
    if (this.resync) clearInterval(this.resync);
    if (this.tuneTimer) clearInterval(this.tuneTimer);
    this.resync = this.tuneTimer = null;
  }
  private resync: NodeJS.Timeout | null = null;

  private get meshCm(): [string, string] {
    const [ns, name] = (this.o.meshConfigMap ?? "istio-system/istio").split("/");
    return [ns, name];
  }

  private ruleChanged(t: WatchEvent, o: Obj): void {
    const k = `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
    if (t === "delete") this.ruleObjects.delete(k);
    else this.ruleObjects.set(k, o);
  }

  private meshChanged(cm: Obj | null): void {
    try {
      const mesh = meshFromObject(cm?.data?.mesh ? parseYaml(cm.data.mesh) : null);
      this.o.scope = { ...this.o.scope, mesh };
      this.scopeNow = null;
    } catch (e) {
      this.log("warn", "ignoring invalid mesh config; keeping the previous one", {
        configMap: this.o.meshConfigMap ?? "istio-system/istio",
        error: (e as Error).message,
      });
    }
    this.enqueueAll();
  }

  private catalogChanged(t: "add" | "update" | "delete", o: Obj): void {
    const k = `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
    if (t === "delete") this.catalogObjects.delete(k);
    else this.catalogObjects.set(k, o);
    this.catalog = null; // rebuilt lazily on the next apply
    this.index = null;
    this.scopeNow = null;
  }

  /** The live catalog and its host index, rebuilt lazily after a Service/ServiceEntry change. */
  private index: HostIndex | null = null;
  catalogNow(): CatalogService[] {
    this.catalog ??= parseCatalog({ items: [...this.catalogObjects.values()] }, this.o.clusterDomain);
    return this.catalog;
  }

  /** The scope context as of now (catalog index, VirtualServices, mesh config); cached until one of them changes. */
  private scopeNow: ScopeContext | null = null;
  /** The live catalog's host index (exportTo checks of reported hosts). */
  hostIndex(): HostIndex {
    return (this.index ??= new HostIndex(this.catalogNow()));
  }
  private scope(): ScopeContext {
    this.scopeNow ??= { ...this.o.scope, index: this.hostIndex(), virtualServices: [...this.virtualServices.values()] };
    return this.scopeNow;
  }

  private savings(sc: SidecarObj): string {
    const s = estimateSavings(sc, this.catalogNow());
    return `clusters ${s.before.clusters}->${s.after.clusters} (-${s.savedPct.clusters}%), endpoints ${s.before.endpoints}->${s.after.endpoints} (-${s.savedPct.endpoints}%)`;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resync) clearInterval(this.resync);
    if (this.tuneTimer) clearInterval(this.tuneTimer);
    this.queue.stop();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    await this.flush().catch((e) =>
      this.log("error", "could not save learned state at shutdown", { error: (e as Error).message }),
    );
    for (const i of this.informers) await (i as unknown as { stop(): Promise<void> }).stop();
  }

  /**
   * May `caller` report for ns/workload? Its SPIFFE namespace must be `ns`, and a pod of that
   * workload must run as its service account (a SPIFFE ID names ns + service account only).
   */
  bindCaller: Binder = (caller, ns, workload, pod) => {
    if (!this.ready) return { status: 503, reason: "not-ready", detail: "collector has not synced pods yet; retry" };
    if (caller.namespace !== ns)
      return {
        status: 403,
        reason: "identity-mismatch",
        detail: `caller ${caller.namespace}/${caller.serviceAccount} may not report for namespace ${ns}`,
      };
    const pods = this.pods.get(`${ns}/${workload}`);
    // Retryable: a new workload's first report can beat its pod's watch event (or a stalled
    // watch that the next relist repairs); the filter keeps the data and sends it again.
    if (!pods?.size)
      return {
        status: 503,
        reason: "unknown-workload",
        detail: `no pod of workload ${ns}/${workload} known yet; retry`,
      };
    // The pod a report names must be one of the workload's, running as the caller: per-pod
    // fairness in the graph is keyed by it, so an invented name must not buy a fresh share.
    if (pod) {
      const p = this.podsByName.get(`${ns}/${pod}`);
      if (!p) return { status: 503, reason: "unknown-workload", detail: `no pod ${ns}/${pod} known yet; retry` };
      if (workloadOfPod(p) !== workload || (p.spec?.serviceAccountName ?? "default") !== caller.serviceAccount)
        return {
          status: 403,
          reason: "identity-mismatch",
          detail: `pod ${ns}/${pod} is not a pod of ${ns}/${workload} running as ${caller.serviceAccount}`,
        };
      return null;
    }
    for (const p of pods.values()) if ((p.spec?.serviceAccountName ?? "default") === caller.serviceAccount) return null;
    return {
      status: 403,
      reason: "identity-mismatch",
      detail: `no pod of ${ns}/${workload} runs as service account ${caller.serviceAccount}`,
    };
  };

  /**
   * The workloads a fallback's caller evidence names: the pod at its address (TPROXY keeps it),
   * checked against the mesh identity when both are known; else every workload of the namespace
   * whose pods run as the service account (a SPIFFE ID names no more: over-inclusion only widens
   * a Sidecar). [] when nothing matches.
   */
  callerWorkloads(c: FallbackReport["edges"][number]["caller"]): string[] | string {
    if (c.podIp) {
      const p = this.podsByIp.get(c.podIp);
      if (!p) return `no pod at ${c.podIp}`;
      if (c.namespace && p.metadata?.namespace !== c.namespace)
        return `pod at ${c.podIp} is not in namespace ${c.namespace}`;
      if (c.serviceAccount && (p.spec?.serviceAccountName ?? "default") !== c.serviceAccount)
        return `pod at ${c.podIp} does not run as ${c.serviceAccount}`;
      return [`${p.metadata!.namespace}/${workloadOfPod(p)}`];
    }
    if (!c.namespace || !c.serviceAccount) return "caller has neither a pod address nor a mesh identity";
    const out: string[] = [];
    for (const [k, pods] of this.pods) {
      if (!k.startsWith(`${c.namespace}/`)) continue;
      for (const p of pods.values())
        if ((p.spec?.serviceAccountName ?? "default") === c.serviceAccount) {
          out.push(k);
          break;
        }
    }
    return out.length ? out : `no pod of namespace ${c.namespace} runs as ${c.serviceAccount}`;
  }

  /**
   * Merge what the fallback forwarded as edges of each caller workload: a registered host becomes
   * an outbound edge (imported at the next reconcile, queued now); an unregistered one an unknown
   * destination (reported with a suggested ServiceEntry, never imported).
   */
  mergeFallback = (r: FallbackReport): Fail | null => {
    if (!this.ready) return [503, "not-ready", "collector has not synced pods yet; retry"];
    const index = this.hostIndex();
    let merged = 0;
    const problems: string[] = [];
    for (const e of r.edges) {
      const host = e.host.toLowerCase();
      const bad = fqdnError(host);
      if (bad) {
        problems.push(`${host}: ${bad}`);
        continue;
      }
      const who = this.callerWorkloads(e.caller);
      if (typeof who === "string") {
        problems.push(who);
        continue;
      }
      for (const key of who) {
        const [ns, name] = key.split("/");
        if (index.exportedTo(host, ns) === false) {
          problems.push(`${host} is not exported to ${ns}`);
          continue;
        }
        const n = this.graph.node(ns, name);
        if (!n) {
          problems.push("graph full");
          continue;
        }
        const s = emptyStats(this.now());
        s.count = e.count;
        const ok = index.has(host)
          ? this.graph.addEdge(
              n,
              {
                dir: "outbound",
                cluster: `outbound|${e.port}||${host}`,
                authority: host,
                proto: e.proto === "HTTP" ? "HTTP/1.1" : "TLS",
              },
              s,
              "fallback",
            )
          : this.graph.addUnknown(
              n,
              {
                kind: "passthrough",
                dst: "",
                authority: e.proto === "HTTP" ? host : "",
                sni: e.proto === "TLS" ? host : "",
                proto: e.proto,
              },
              s,
            );
        if (ok) {
          merged++;
          this.touched(ns, name);
        }
      }
    }
    return this.mergeOutcome("fallback", merged, problems);
  };

  /** Entries a side report could not merge are logged; a report of nothing mergeable is refused. */
  private mergeOutcome(kind: string, merged: number, problems: string[], fields: object = {}): Fail | null {
    if (problems.length)
      this.log("warn", `${kind} report entries not merged`, { ...fields, count: problems.length, first: problems[0] });
    return merged === 0 && problems.length ? [403, "unknown-workload", problems[0]] : null;
  }

  /**
   * Merge a node agent's connect-time L4 edges: each pod must exist in the informer, on the node
   * the agent names (an agent speaks for its own node only); each original destination becomes a
   * passthrough destination of the pod's workload, imported when the catalog defines the address
   * (ClusterIP, ServiceEntry address: hostsOfUnknown), else reported with a suggested ServiceEntry.
   */
  /** Diagnose's windowed store (set by the controller command); kernel signals go there. */
  diagnose: DiagnoseStore | null = null;

  mergeAgent = (r: AgentReport): Fail | null => {
    if (!this.ready) return [503, "not-ready", "collector has not synced pods yet; retry"];
    let merged = 0;
    const problems: string[] = [];
    for (const p of r.pods) {
      const key = `${p.namespace}/${p.name}`;
      const pod = this.podsByName.get(key);
      if (!pod) {
        problems.push(`no pod ${key}`);
        continue;
      }
      if (pod.spec?.nodeName !== r.node) {
        problems.push(`pod ${key} is not on node ${r.node}`);
        continue;
      }
      const workload = workloadOfPod(pod);
      const n = this.graph.node(p.namespace, workload);
      if (!n) {
        problems.push("graph full");
        continue;
      }
      for (const e of p.edges) {
        const s = emptyStats(this.now());
        s.count = e.count;
        if (this.graph.addUnknown(n, { kind: "passthrough", dst: e.dst, authority: "", sni: "", proto: "TCP" }, s))
          merged++;
        else problems.push("graph full");
      }
      if (p.edges.length) this.touched(p.namespace, workload);
    }
    // Kernel signals, for pods the informer places on the reporting node only.
    if (r.kernel && this.diagnose) {
      const pods = r.kernel.pods.filter((p) => {
        const pod = this.podsByName.get(`${p.namespace}/${p.name}`);
        if (!pod || pod.spec?.nodeName !== r.node) {
          problems.push(`kernel signals for ${p.namespace}/${p.name}, not a pod of node ${r.node}`);
          return false;
        }
        this.diagnose!.remember(`${p.namespace}/${p.name}`, `${p.namespace}/${workloadOfPod(pod)}`);
        merged++;
        return true;
      });
      this.diagnose.addKernel(r.node, { ...r.kernel, pods }, this.now());
    }
    return this.mergeOutcome("agent", merged, problems, { node: r.node });
  };

  /** A report (or Prometheus scrape) touched this workload. */
  touched(ns: string, workload: string): void {
    if (this.ready && this.leading) this.queue.add(`${ns}/${workload}`);
  }

  private enabled(ns: string, pods: V1Pod[]): boolean {
    for (const p of pods) {
      const a = p.metadata?.annotations?.[ENABLED];
      if (a === "true" || a === "false") return a === "true";
    }
    const l = this.namespaces.get(ns)?.metadata?.labels?.[ENABLED];
    if (l === "true" || l === "false") return l === "true";
    return this.o.defaultEnabled;
  }

  private learnedHosts(
    ns: string,
    name: string,
    scope: ScopeContext,
  ): { since: number | null; hosts: Map<string, HostSeen> } {
    const hosts = new Map<string, HostSeen>();
    let since: number | null = null;
    const n = this.graph.nodes.get(`${ns}/${name}`);
    const seen: [Stats, string[]][] = [];
    for (const e of n?.edges.values() ?? []) seen.push([e, hostsOfEdge(e, ns, scope)]);
    for (const u of n?.unknown.values() ?? []) seen.push([u, hostsOfUnknown(u, ns, scope)]);
    for (const [e, hs] of seen) {
      since = since === null ? e.firstSeenMs : Math.min(since, e.firstSeenMs);
      for (const h of hs) {
        const c = hosts.get(h);
        hosts.set(
          h,
          c
            ? { firstSeenMs: Math.min(c.firstSeenMs, e.firstSeenMs), lastSeenMs: Math.max(c.lastSeenMs, e.lastSeenMs) }
            : { firstSeenMs: e.firstSeenMs, lastSeenMs: e.lastSeenMs },
        );
      }
    }
    if (since !== null) this.store.merge(ns, name, since, hosts);
    const stored = this.store.get(ns, name);
    return { since: stored?.observedSinceMs ?? since, hosts: stored?.hosts ?? hosts };
  }

  async reconcile(key: string): Promise<void> {
    if (!this.leading) return; // a standby watches and collects; only the leader decides and writes
    const [ns, name] = key.split("/");
    const pods = [...(this.pods.get(key)?.values() ?? [])];
    const existing: ExistingSidecar[] = [...(this.sidecars.get(ns)?.values() ?? [])].map((s) => ({
      name: s.metadata!.name!,
      managed: s.metadata?.labels?.[MANAGED_LABEL] === FIELD_MANAGER,
      hosts: s.spec?.egress?.[0]?.hosts ?? [],
      selector: s.spec?.workloadSelector?.labels ?? null,
    }));
    if (pods.length === 0) {
      // Workload gone: clean up what we generated for it.
      const mine = existing.find((s) => s.name === name && s.managed);
      if (mine) await this.act(ns, name, { action: "delete", name, reason: "workload has no pods" });
      return;
    }
    // Selector: the pod template's labels common to every pod of the workload (a rollout may differ).
    const sels = pods.map((p) => selectorOfPod(p));
    const selector = Object.fromEntries(Object.entries(sels[0]).filter(([k, v]) => sels.every((s) => s[k] === v)));
    const proxy = proxyOfPod(pods[0]);
    const scope = this.scope();
    const learned = this.learnedHosts(ns, name, scope);
    // Persist on its own schedule: a Sidecar write that fails below must not hold learned state back.
    this.scheduleFlush();
    const d = decide(
      {
        namespace: ns,
        name,
        selector,
        podLabels: pods[0].metadata?.labels ?? {},
        enabled: this.enabled(ns, pods),
        nonSidecar: proxy.kind === "sidecar" ? undefined : `${proxy.kind} (${proxy.why})`,
        observedSinceMs: learned.since,
        learned: learned.hosts,
        namespaceDefault: namespaceDefault(
          (n) => [...(this.sidecars.get(n)?.values() ?? [])],
          ns,
          scope.mesh.rootNamespace,
          (s) => s.metadata?.labels?.[MANAGED_LABEL] === FIELD_MANAGER,
        ),
      },
      existing,
      { ...this.o, scope },
      this.now(),
    );
    await this.act(ns, name, d);
    // Come back when the observation window will have passed (first-seen is the collector's clock).
    if (d.action === "skip" && d.reason.startsWith("observing") && learned.since !== null)
      this.queue.addAfter(key, learned.since + this.o.minWindowMs - this.now() + 100);
  }

  /**
   * Persist learned state in batches (one write per dirty namespace), not once per reconcile. A
   * failed save is retried with backoff (1 s doubling to 30 s) until it succeeds, whether or not
   * anything else happens. Bound on loss: a SIGKILL loses at most what was learned in the last
   * flushDelayMs plus one save (the next reports re-teach it); SIGTERM flushes first.
   */
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private flushFailures = 0;
  private scheduleFlush(delayMs = this.o.flushDelayMs ?? 2000): void {
    if (this.flushTimer || this.stopped) return;
    this.flushTimer = setTimeout(() => {
      this.flush().then(
        () => {
          this.flushTimer = null;
          this.flushFailures = 0;
          if (this.store.hasDirty()) this.scheduleFlush(); // learned more while saving
        },
        (e) => {
          this.flushTimer = null;
          const retryMs = Math.min(30_000, 1000 * 2 ** this.flushFailures++);
          this.saveErrors.inc();
          this.log("warn", "could not save learned state; retrying", {
            error: (e as Error).message.split("\n")[0],
            retryInMs: retryMs,
            failures: this.flushFailures,
          });
          this.scheduleFlush(retryMs);
        },
      );
    }, delayMs);
  }

  /** Save what is dirty now; one save at a time. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => {});
    this.flushing = this.store.saveDirty();
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
    }
  }

  /** Carry out a decision for workload ns/name (its Sidecar has the workload's name). */
  private async act(ns: string, name: string, d: Decision): Promise<void> {
    const key = `${ns}/${name}`;
    const prev = this.decisions.get(key);
    this.applied.inc({ action: d.action });
    if ((d.action === "apply" || d.action === "recommend" || d.action === "skip") && d.rejected?.length) {
      this.rejectedHosts.inc(d.rejected.length);
      const sig = d.rejected.map((r) => r.candidate).join(",");
      if (this.rejectedSeen.get(key) !== sig) {
        this.rejectedSeen.set(key, sig);
        this.log("warn", "hosts rejected by Istio validation; not applied", {
          workload: key,
          rejected: d.rejected.map((r) => `${r.candidate} (${r.source}): ${r.reason}`),
        });
      }
    }
    if (d.action === "apply") {
      d.sidecar.metadata.annotations = {
        ...d.sidecar.metadata.annotations,
        [`${ANNOTATION}estimated-savings`]: this.savings(d.sidecar),
      };
      validateSidecar(d.sidecar);
      const cur = this.sidecar(ns, name);
      const same = cur && JSON.stringify(cur.spec) === JSON.stringify(d.sidecar.spec);
      if (!same || this.o.dryRun) {
        const res = await apply(this.api, d.sidecar as unknown as KubernetesObject, this.o.dryRun);
        if (!this.o.dryRun) this.indexObj(this.sidecars, ns, name, res as Obj);
        this.decisions.set(key, d); // what is applied is reported at once, not after the Event round trip
        const diff = hostDiff(cur?.spec?.egress?.[0]?.hosts ?? [], d.sidecar.spec.egress[0].hosts);
        this.log("info", this.o.dryRun ? "dry-run: Sidecar would be applied" : "Sidecar applied", {
          sidecar: key,
          created: !cur,
          ...diff,
          expired: d.dropped,
        });
        if (!this.o.dryRun)
          await this.event(
            ns,
            d.sidecar.metadata.name,
            "Applied",
            `meshtune applied Sidecar with ${d.sidecar.spec.egress[0].hosts.length} egress hosts`,
            "Normal",
          );
      }
    } else if (d.action === "delete") {
      if (!this.o.dryRun) {
        try {
          await this.api.delete({
            apiVersion: "networking.istio.io/v1beta1",
            kind: "Sidecar",
            metadata: { name: d.name, namespace: ns },
          });
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
        this.indexObj(this.sidecars, ns, name, null);
      }
      this.log("info", "Sidecar deleted", { sidecar: key, reason: d.reason, dryRun: this.o.dryRun });
      if (!this.o.dryRun)
        await this.event(ns, name, "Deleted", `meshtune deleted its Sidecar ${key}: ${d.reason}`, "Warning");
    } else if (
      d.action === "skip" &&
      /user-owned/.test(d.reason) &&
      (prev?.action !== "skip" || prev.reason !== d.reason)
    ) {
      // Once per change of reason, not on every reconcile.
      this.log("info", "workload skipped", { workload: key, reason: d.reason });
      if (!this.o.dryRun) await this.event(ns, name, "Skipped", `meshtune left ${key} alone: ${d.reason}`, "Warning");
    }
    this.decisions.set(key, d);
  }

  private async event(
    ns: string,
    name: string,
    reason: string,
    message: string,
    type: "Normal" | "Warning",
  ): Promise<void> {
    const now = new Date(this.now()).toISOString();
    try {
      await this.api.create({
        apiVersion: "v1",
        kind: "Event",
        metadata: { generateName: `${name}.`, name: `${name}.${this.now().toString(36)}`, namespace: ns },
        involvedObject: { apiVersion: "networking.istio.io/v1beta1", kind: "Sidecar", name, namespace: ns },
        reason,
        message,
        type,
        source: { component: "meshtune-controller" },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      } as KubernetesObject);
    } catch (e) {
      this.log("warn", "could not record event", { error: (e as Error).message });
    }
  }

  /** Rules, resources, discovery scope and CryptoMB from what is learned now (never applied). */
  /** Tuning recommendations over `graph` (a bounded read view: reconcile/read-view.ts), default the whole graph. */
  tuning(
    o: { istioVersion: [number, number]; minRequests: number },
    savings = this.savingsNow(),
    graph: Graph = this.graph,
  ): Tuning {
    const items = [
      ...this.catalogObjects.values(),
      ...this.ruleObjects.values(),
      ...this.nodes.values(),
      ...[...this.namespaces.values()].map((n) => ({ ...n, kind: "Namespace" })),
      ...[...this.pods.values()].flatMap((m) => [...m.values()].map((p) => ({ ...p, kind: "Pod" }))),
    ] as Obj[];
    const services = this.catalogNow();
    return tune({
      graph,
      services,
      items,
      savings,
      domain: this.o.clusterDomain,
      istioVersion: o.istioVersion,
      minRequests: o.minRequests,
    });
  }

  /**
   * One opted-in tuning pass (leader only, never two at once): what tune() recommends now,
   * applied under tune/apply.ts's ownership and safety rules; each outcome logged and counted.
   */
  async tunePass(): Promise<TuneOutcome[]> {
    const kinds = this.o.applyTuning ?? [];
    if (!this.leading || !this.ready || this.tuneRunning || !kinds.length || this.o.mode !== "apply") return [];
    this.tuneRunning = true;
    try {
      const t = this.tuning({
        istioVersion: this.o.istioVersion ?? [1, 25],
        minRequests: this.o.tuneMinRequests ?? 100,
      });
      const applier = new TuningApplier(this.api, {
        kinds: new Set(kinds),
        dryRun: this.o.dryRun,
        maxRollouts: this.o.maxRollouts ?? 5,
      });
      const out = await applier.run(t, this.tuneWorld());
      for (const r of out) {
        this.tuneApplied.inc({ kind: r.kind, action: r.action });
        if (r.action !== "unchanged")
          this.log(r.action === "failed" ? "warn" : "info", `tuning ${r.action}`, {
            kind: r.kind,
            object: r.object,
            reason: r.reason,
            dryRun: this.o.dryRun,
          });
      }
      this.tuneOutcomes = out;
      return out;
    } catch (e) {
      this.log("error", "tuning pass failed; next pass retries", { error: (e as Error).message });
      return [];
    } finally {
      this.tuneRunning = false;
    }
  }

  private tuneWorld(): TuneWorld {
    const nsEnabled = (ns: string) => {
      const l = this.namespaces.get(ns)?.metadata?.labels?.[ENABLED];
      return l === "true" || l === "false" ? l === "true" : this.o.defaultEnabled;
    };
    const items = [...this.ruleObjects.values()];
    return {
      namespaceEnabled: nsEnabled,
      workloadReady: (key, proxies) => {
        const pods = [...(this.pods.get(key)?.values() ?? [])];
        if (!pods.length) return `no pods of ${key}`;
        if (!this.enabled(key.split("/")[0], pods)) return `${key} not opted in (meshtune.io/enabled)`;
        const proxy = proxyOfPod(pods[0]);
        if (!proxies.includes(proxy.kind))
          return `${key} is a ${proxy.kind} (${proxy.why}), not a ${proxies.join(" or ")}`;
        const since = this.store.get(key.split("/")[0], key.split("/")[1])?.observedSinceMs ?? null; // set by reconcile from the first report
        if (since === null || this.now() - since < this.o.minWindowMs) return "observing: minimum window not reached";
        return true;
      },
      controllerOf: (key) => {
        const p = this.pods.get(key)?.values().next().value;
        return p ? controllerOfPod(p) : `no pods of ${key}`;
      },
      rules: () => items,
      userHosts: (kind) => userRuleHosts(items, kind, this.o.clusterDomain),
      serviceExists: (host) => this.catalogNow().some((s) => s.host === host),
    };
  }

  /** Destinations outside the registry (with suggested ServiceEntries), refused hosts and non-sidecar proxies, as the offline report lists them. */
  registryNotes(): Pick<GenerateResult, "unregistered" | "rejected" | "proxiesSkipped"> {
    const r = generateSidecars(this.graph, { ...this.scope() });
    return { unregistered: r.unregistered, rejected: r.rejected, proxiesSkipped: r.proxiesSkipped };
  }

  /** The savings estimate of every Sidecar meshtune would apply now, against the live catalog. */
  savingsNow(only?: ReadonlySet<string>): Savings[] {
    const services = this.catalogNow();
    return this.recommendations(only).map((sc) => estimateSavings(sc, services));
  }

  /** Recommend-only report: what would be applied, per workload. */
  recommendations(only?: ReadonlySet<string>): SidecarObj[] {
    return [...this.decisions].flatMap(([k, d]) =>
      (d.action === "recommend" || d.action === "apply") && (!only || only.has(k)) ? [d.sidecar] : [],
    );
  }

  /** Status report served on /recommendations: every workload's last decision and why. */
  status(): WorkloadStatus[] {
    return [...this.decisions].sort(([a], [b]) => (a < b ? -1 : 1)).map(([w, d]) => statusOf(w, d));
  }
}

export type WorkloadStatus = {
  workload: string;
  action: string;
  reason?: string;
  sidecar?: SidecarObj;
  expired?: string[];
};

/** One workload's last decision as /recommendations shows it. */
export function statusOf(workload: string, d: Decision): WorkloadStatus {
  return d.action === "skip" || d.action === "delete"
    ? { workload, action: d.action, reason: d.reason }
    : { workload, action: d.action, sidecar: d.sidecar, expired: d.dropped };
}

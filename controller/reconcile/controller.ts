// The in-cluster loop, composed of one concern per module: the informer set with its indexes
// (cluster-view.ts), the report merge the collector calls (report-merge.ts), learned-state
// persistence (learned-flush.ts), the Sidecar writer (sidecar-writer.ts) and the tuning pass
// (tuning-loop.ts), one workload's reconcile (workload-reconcile.ts), the status it reports
// (status-view.ts), its metrics (metrics.ts). Informers run on every replica (each is Ready after its own sync); a keyed
// queue per namespace/workload whose work runs only while this replica leads (Istio's
// leaderelection AddRunFunction semantics: leadership starts/stops the work, never the process);
// decisions from decide.ts.
import type { KubeConfig, KubernetesObjectApi } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import { controllerMetrics } from "../metrics.js";
import type { DiagnoseStore } from "../diagnose/store.js";
import type { Graph } from "../model/graph.js";
import type { GenerateResult, SidecarObj } from "../sidecar/generate.js";
import type { Savings } from "../sidecar/savings.js";
import type { CatalogService } from "../sidecar/catalog.js";
import type { HostIndex } from "../istio/hosts.js";
import type { Tuning } from "../tune/tune.js";
import type { TuneOutcome } from "../tune/apply.js";
import type { LearnedStore } from "../k8s/learned-store.js";
import type { Logger } from "../log.js";
import type { Binder } from "../collector/server.js";
import type { Decision } from "./decide.js";
import { WorkQueue } from "./queue.js";
import { ClusterView } from "./cluster-view.js";
import { reconcileWorkload } from "./workload-reconcile.js";
import type { ControllerOptions } from "./options.js";
import { ReportMerger } from "./report-merge.js";
import { LearnedFlusher } from "./learned-flush.js";
import { SidecarWriter } from "./sidecar-writer.js";
import { TuningLoop } from "./tuning-loop.js";
import { recommendationsOf, registryNotes, savingsOf, statusOfAll, type WorkloadStatus } from "./status-view.js";

export { hostDiff } from "./sidecar-writer.js";
export type { ControllerOptions } from "./options.js";
export { ENABLED } from "./tuning-loop.js";
export { statusOf, type WorkloadStatus } from "./status-view.js";

export class MeshController {
  readonly view: ClusterView;
  readonly queue: WorkQueue;
  /** Whether this replica holds the lease: only then does queued work run. */
  leading = false;
  ready = false;
  private readonly merger: ReportMerger;
  private readonly flusher: LearnedFlusher;
  private readonly writer: SidecarWriter;
  private readonly tuner: TuningLoop;
  private resync: NodeJS.Timeout | null = null;
  private tuneTimer: NodeJS.Timeout | null = null;

  constructor(
    kc: KubeConfig,
    api: KubernetesObjectApi,
    readonly graph: Graph,
    readonly store: LearnedStore,
    private readonly o: ControllerOptions,
    private readonly log: Logger,
    registry: Registry,
  ) {
    const m = controllerMetrics(registry, () => this.workloadKeys().length);
    this.queue = new WorkQueue(
      (k) => this.reconcile(k),
      (k, e) => {
        m.reconcileErrors.inc();
        this.log("error", "reconcile failed; will retry", { workload: k, error: (e as Error).message });
      },
    );
    const now = () => this.now();
    this.view = new ClusterView(
      kc,
      api,
      { clusterDomain: o.clusterDomain, relistMs: o.relistMs, meshConfigMap: o.meshConfigMap, scope: o.scope },
      log,
      {
        workload: (k) => this.queue.add(k),
        namespace: (ns) => this.enqueueNamespace(ns),
        all: () => this.enqueueAll(),
      },
    );
    this.merger = new ReportMerger(
      this.view,
      graph,
      () => this.ready,
      (ns, w) => this.touched(ns, w),
      now,
      log,
    );
    this.flusher = new LearnedFlusher(store, o.flushDelayMs ?? 2000, m.saveErrors, log);
    this.writer = new SidecarWriter(
      api,
      this.view,
      o.dryRun,
      { applied: m.reconciled, rejectedHosts: m.rejectedHosts },
      now,
      log,
    );
    this.tuner = new TuningLoop(api, this.view, graph, store, o, m.tuneApplied, now, log);
  }

  // The view's indexes, as callers (commands, tests) read them.
  get pods() {
    return this.view.pods;
  }
  get podsByIp() {
    return this.view.podsByIp;
  }
  get namespaces() {
    return this.view.namespaces;
  }
  get sidecars() {
    return this.view.sidecars;
  }
  get catalogObjects() {
    return this.view.catalogObjects;
  }
  get virtualServices() {
    return this.view.virtualServices;
  }
  get ruleObjects() {
    return this.view.ruleObjects;
  }
  get nodes() {
    return this.view.nodes;
  }
  get decisions(): Map<string, Decision> {
    return this.writer.decisions;
  }
  get tuneOutcomes(): TuneOutcome[] {
    return this.tuner.outcomes;
  }
  get diagnose(): DiagnoseStore | null {
    return this.merger.diagnose;
  }
  set diagnose(d: DiagnoseStore | null) {
    this.merger.diagnose = d;
  }
  readonly bindCaller: Binder = (...a) => this.merger.bindCaller(...a);
  readonly mergeFallback = (...a: Parameters<ReportMerger["mergeFallback"]>) => this.merger.mergeFallback(...a);
  readonly mergeAgent = (...a: Parameters<ReportMerger["mergeAgent"]>) => this.merger.mergeAgent(...a);
  callerWorkloads(...a: Parameters<ReportMerger["callerWorkloads"]>) {
    return this.merger.callerWorkloads(...a);
  }
  catalogNow(): CatalogService[] {
    return this.view.catalogNow();
  }
  hostIndex(): HostIndex {
    return this.view.hostIndex();
  }
  workloadKeys(): string[] {
    return this.view.workloadKeys();
  }

  private now() {
    return this.o.now?.() ?? Date.now();
  }

  private enqueueNamespace(ns: string): void {
    for (const k of this.workloadKeys()) if (k.startsWith(`${ns}/`)) this.queue.add(k);
  }

  private enqueueAll(): void {
    if (this.ready && this.leading) for (const k of this.workloadKeys()) this.queue.add(k);
  }

  /** Start informers; ready once each has listed and persisted state is loaded. */
  async start(): Promise<void> {
    await this.view.start();
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

  async stop(): Promise<void> {
    this.stopLeading();
    this.queue.stop();
    this.flusher.stop();
    await this.flush().catch((e) =>
      this.log("error", "could not save learned state at shutdown", { error: (e as Error).message }),
    );
    await this.view.stop();
  }

  /** A report (or Prometheus scrape) touched this workload. */
  touched(ns: string, workload: string): void {
    if (this.ready && this.leading) this.queue.add(`${ns}/${workload}`);
  }

  async reconcile(key: string): Promise<void> {
    if (!this.leading) return; // a standby watches and collects; only the leader decides and writes
    await reconcileWorkload(
      { view: this.view, graph: this.graph, store: this.store, o: this.o, writer: this.writer, now: () => this.now() },
      key,
      () => this.flusher.schedule(),
      (k, ms) => this.queue.addAfter(k, ms),
    );
  }

  /** Save what is dirty now; one save at a time. */
  flush(): Promise<void> {
    return this.flusher.flush();
  }

  /** Rules, resources, discovery scope and CryptoMB from what is learned now (never applied). */
  tuning(o: { istioVersion: [number, number]; minRequests: number }, savings = this.savingsNow(), graph?: Graph) {
    return this.tuner.tuning(o, savings, graph) as Tuning;
  }

  /** One opted-in tuning pass, leader only. */
  async tunePass(): Promise<TuneOutcome[]> {
    if (!this.leading || !this.ready) return [];
    return this.tuner.pass(() => this.savingsNow());
  }

  /** Destinations outside the registry (with suggested ServiceEntries), refused hosts and non-sidecar proxies, as the offline report lists them. */
  registryNotes(): Pick<GenerateResult, "unregistered" | "rejected" | "proxiesSkipped"> {
    return registryNotes(this.graph, this.view.scope());
  }
  /** The savings estimate of every Sidecar meshtune would apply now, against the live catalog. */
  savingsNow(only?: ReadonlySet<string>): Savings[] {
    return savingsOf(this.recommendations(only), this.catalogNow());
  }
  /** Recommend-only report: what would be applied, per workload. */
  recommendations(only?: ReadonlySet<string>): SidecarObj[] {
    return recommendationsOf(this.decisions, only);
  }
  /** Status report served on /recommendations: every workload's last decision and why. */
  status(): WorkloadStatus[] {
    return statusOfAll(this.decisions);
  }
}

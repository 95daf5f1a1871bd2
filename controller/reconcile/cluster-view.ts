// The informer set and its declared indexes, on every replica (each is Ready after its own sync):
// Namespaces; Pods by workload, by address and by name; Sidecars by namespace; Services and
// ServiceEntries (the live catalog and its host index); VirtualServices and DestinationRules;
// Nodes; the mesh config. Handlers only index and say what changed (Istio's kclient indexes and
// enqueue-only handlers: pkg/kube/kclient/index.go, pkg/kube/controllers/queue.go).
import {
  type KubeConfig,
  type KubernetesObject,
  type KubernetesObjectApi,
  type V1Namespace,
  type V1Pod,
  type Informer,
} from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import { watchResource, type WatchEvent } from "../k8s/informer.js";
import { workloadOfPod } from "../model/identity.js";
import { HostIndex } from "../istio/hosts.js";
import { meshFromObject } from "../istio/mesh-config.js";
import { virtualServiceRef, type VirtualServiceRef } from "../istio/virtual-services.js";
import { parseCatalog, type CatalogService } from "../sidecar/catalog.js";
import type { ScopeContext } from "../sidecar/scope.js";
import type { Logger } from "../log.js";
import { isManaged } from "./decide.js";

export type Obj = KubernetesObject & { spec?: any; data?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface ViewOptions {
  clusterDomain: string;
  relistMs?: number;
  /** The mesh config ConfigMap ("istio-system/istio"; key `mesh`). */
  meshConfigMap?: string;
  scope: ScopeContext;
}

/** What the view tells its owner; the owner decides what to requeue. */
export interface ViewEvents {
  workload(key: string): void;
  namespace(ns: string): void;
  all(): void;
}

function indexObj<T extends KubernetesObject>(
  m: Map<string, Map<string, T>>,
  outer: string,
  inner: string,
  o: T | null,
) {
  let g = m.get(outer);
  if (!g) m.set(outer, (g = new Map()));
  if (o) g.set(inner, o);
  else {
    g.delete(inner);
    if (g.size === 0) m.delete(outer);
  }
}

export class ClusterView {
  /** Pods by "ns/workload" then pod name. */
  readonly pods = new Map<string, Map<string, V1Pod>>();
  /** Pods by address (status.podIPs; host-network pods share the node's and are left out): who a fallback's caller is. */
  readonly podsByIp = new Map<string, V1Pod>();
  /** "namespace/name" -> pod: agent reports name pods, not workloads. */
  readonly podsByName = new Map<string, V1Pod>();
  readonly namespaces = new Map<string, V1Namespace>();
  /** Sidecars by namespace then name. */
  readonly sidecars = new Map<string, Map<string, Obj>>();
  /** The user's (not meshtune's) Sidecars, likewise: each workload's reconcile reads its
   * namespace's, so they are kept apart from the one-per-workload managed ones. */
  readonly userSidecars = new Map<string, Map<string, Obj>>();
  /** Services and ServiceEntries: the live catalog behind each Sidecar's savings estimate. */
  readonly catalogObjects = new Map<string, Obj>();
  readonly virtualServices = new Map<string, VirtualServiceRef>();
  /** VirtualServices and DestinationRules, whole ("Kind/ns/name"): user rules are never overridden. */
  readonly ruleObjects = new Map<string, Obj>();
  /** Nodes (their meshtune.io/ feature labels decide CryptoMB). */
  readonly nodes = new Map<string, Obj>();
  private catalog: CatalogService[] | null = null;
  private index: HostIndex | null = null;
  private scopeNow: ScopeContext | null = null;
  private informers: Informer<KubernetesObject>[] = [];
  private stopped = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly api: KubernetesObjectApi,
    private readonly o: ViewOptions,
    private readonly log: Logger,
    private readonly on: ViewEvents,
  ) {}

  workloadKeys(): string[] {
    return [...this.pods.keys()];
  }

  sidecar(ns: string, name: string): Obj | undefined {
    return this.sidecars.get(ns)?.get(name);
  }

  /** The informer cache after this replica's own write (apply, delete). */
  recordSidecar(ns: string, name: string, o: Obj | null): void {
    indexObj(this.sidecars, ns, name, o);
    indexObj(this.userSidecars, ns, name, o && !isManaged(o) ? o : null);
  }

  /** Start every informer; resolves once each has listed. */
  async start(): Promise<void> {
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
    const list = (apiVersion: string, kind: string, ns?: string) => () => this.api.list(apiVersion, kind, ns);
    const [cmNs, cmName] = this.meshCm();
    await Promise.all([
      watch<V1Namespace>("/api/v1/namespaces", list("v1", "Namespace"), (t, o) => this.namespaceChanged(t, o)),
      watch<V1Pod>("/api/v1/pods", list("v1", "Pod"), (t, o) => this.podChanged(t, o)),
      watch<Obj>("/apis/networking.istio.io/v1beta1/sidecars", list("networking.istio.io/v1beta1", "Sidecar"), (t, o) =>
        this.sidecarChanged(t, o),
      ),
      watch<Obj>("/api/v1/services", list("v1", "Service"), (t, o) => this.catalogChanged(t, o), "Service"),
      watch<Obj>(
        "/apis/networking.istio.io/v1beta1/serviceentries",
        list("networking.istio.io/v1beta1", "ServiceEntry"),
        (t, o) => this.catalogChanged(t, o),
        "ServiceEntry",
      ),
      watch<Obj>(
        "/apis/networking.istio.io/v1beta1/virtualservices",
        list("networking.istio.io/v1beta1", "VirtualService"),
        (t, o) => this.virtualServiceChanged(t, o),
      ),
      watch<Obj>(
        "/apis/networking.istio.io/v1beta1/destinationrules",
        list("networking.istio.io/v1beta1", "DestinationRule"),
        (t, o) => this.ruleChanged(t, { ...o, kind: "DestinationRule" }),
        "DestinationRule",
      ),
      watch<Obj>(
        "/api/v1/nodes",
        list("v1", "Node"),
        (t, o) => {
          if (t === "delete") this.nodes.delete(o.metadata!.name!);
          else this.nodes.set(o.metadata!.name!, { ...o, kind: "Node" });
        },
        "Node",
      ),
      watch<Obj>(`/api/v1/namespaces/${cmNs}/configmaps`, list("v1", "ConfigMap", cmNs), (t, o) => {
        if (o.metadata?.name === cmName) this.meshChanged(t === "delete" ? null : o);
      }),
    ]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const i of this.informers) await (i as unknown as { stop(): Promise<void> }).stop();
  }

  private namespaceChanged(t: WatchEvent, o: V1Namespace): void {
    if (t === "delete") this.namespaces.delete(o.metadata!.name!);
    else this.namespaces.set(o.metadata!.name!, o);
    this.on.namespace(o.metadata!.name!);
  }

  private podChanged(t: WatchEvent, o: V1Pod): void {
    const k = `${o.metadata!.namespace}/${workloadOfPod(o)}`;
    indexObj(this.pods, k, o.metadata!.name!, t === "delete" ? null : o);
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
    this.on.workload(k);
  }

  private sidecarChanged(t: WatchEvent, o: Obj): void {
    this.recordSidecar(o.metadata!.namespace!, o.metadata!.name!, t === "delete" ? null : o);
    // A user Sidecar can block several workloads of its namespace: recheck them all; a
    // root-namespace default concerns every namespace.
    const ns = o.metadata!.namespace!;
    if (ns === this.scope().mesh.rootNamespace) for (const k of this.workloadKeys()) this.on.workload(k);
    else this.on.namespace(ns);
  }

  private virtualServiceChanged(t: WatchEvent, o: Obj): void {
    const k = `${o.metadata?.namespace}/${o.metadata?.name}`;
    const ref = t === "delete" ? null : virtualServiceRef(o, this.o.clusterDomain);
    this.ruleChanged(t, { ...o, kind: "VirtualService" });
    if (ref) this.virtualServices.set(k, ref);
    else this.virtualServices.delete(k);
    this.scopeNow = null;
    this.on.all(); // any workload may route through it
  }

  private meshCm(): [string, string] {
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
    this.on.all();
  }

  private catalogChanged(t: WatchEvent, o: Obj): void {
    const k = `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
    if (t === "delete") this.catalogObjects.delete(k);
    else this.catalogObjects.set(k, o);
    this.catalog = null; // rebuilt lazily on the next use
    this.index = null;
    this.scopeNow = null;
  }

  /** The live catalog, rebuilt lazily after a Service/ServiceEntry change. */
  catalogNow(): CatalogService[] {
    this.catalog ??= parseCatalog({ items: [...this.catalogObjects.values()] }, this.o.clusterDomain);
    return this.catalog;
  }

  /** The live catalog's host index (exportTo checks of reported hosts). */
  hostIndex(): HostIndex {
    return (this.index ??= new HostIndex(this.catalogNow()));
  }

  /** The scope context as of now (catalog index, VirtualServices, mesh config); cached until one of them changes. */
  scope(): ScopeContext {
    this.scopeNow ??= { ...this.o.scope, index: this.hostIndex(), virtualServices: [...this.virtualServices.values()] };
    return this.scopeNow;
  }
}

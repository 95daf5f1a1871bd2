// The cluster tune-apply's tests run against: namespaces shop and gw with three workloads, an
// opted-in ingress gateway, two nodes, traffic in the graph, and the controller with tuning on.
// On the real kube-apiserver (default) the controller authenticates with its own ServiceAccount's
// token, so manifests/rbac.yaml plus manifests/optional/tuning-apply.yaml decide what it may do;
// each setup gets fresh namespaces (no namespace controller runs to delete old ones), and the
// tests keep saying "shop"/"gw": names are mapped both ways here.
import { Registry } from "prom-client";
import { join } from "node:path";
import { FakeApiServer } from "../k8s/fake-apiserver.js";
import { realApiServer, type RealApiServer } from "./kube-apiserver.js";
import { ROOT } from "./cli.js";
import { loadKubeConfig, objectApi } from "../../controller/k8s/kube.js";
import { LearnedStore } from "../../controller/k8s/learned-store.js";
import { MeshController } from "../../controller/reconcile/controller.js";
import { Graph } from "../../controller/model/graph.js";
import { deploymentPod } from "../fixtures/pods.js";
import { DEFAULT_SCOPE, DEFAULT_COLLECTOR_HOST } from "../../controller/sidecar/scope.js";
import type { TuneKind, TuneOutcome } from "../../controller/tune/apply.js";

type Obj = Record<string, any>;
export const H = 3600_000;
export const NOW = Date.parse("2026-11-22T12:00:00Z");
const D = "cluster.local";
const FALLBACK = { host: "meshtune-fallback.meshtune-system.svc.cluster.local", port: 80 };
const quiet = () => {};
const PLURAL: Record<string, string> = {
  namespaces: "namespace",
  services: "service",
  pods: "pod",
  deployments: "deployment.apps",
  nodes: "node",
  virtualservices: "virtualservice.networking.istio.io",
  destinationrules: "destinationrule.networking.istio.io",
};
const API: Record<string, [string, string]> = {
  namespaces: ["v1", "Namespace"],
  services: ["v1", "Service"],
  pods: ["v1", "Pod"],
  deployments: ["apps/v1", "Deployment"],
  nodes: ["v1", "Node"],
  virtualservices: ["networking.istio.io/v1", "VirtualService"],
  destinationrules: ["networking.istio.io/v1", "DestinationRule"],
};

/** n GET requests from→to, latencies spread up to maxMs, over the hour that ended an hour ago. */
function calls(g: Graph, ns: string, from: string, toNs: string, to: string, n: number, maxMs: number) {
  const a = g.node(ns, from)!,
    b = g.node(toNs, to)!;
  for (let i = 0; i < n; i++) {
    const us = Math.round(((i + 1) / n) * maxMs * 1000),
      at = NOW - 2 * H + Math.round((i * H) / n); // spread over an hour: above the evidence window
    const host = `${to}.${toNs}.svc.${D}`;
    g.observe(
      a,
      { dir: "outbound", cluster: `outbound|8080||${host}`, authority: `${to}:8080`, proto: "HTTP/1.1" },
      200,
      us,
      at,
      "GET",
    );
    g.observe(
      b,
      { dir: "inbound", cluster: "inbound|8080||", authority: `${to}:8080`, proto: "HTTP/1.1" },
      200,
      us,
      at,
    );
  }
}

export const deployment = (ns: string, name: string, annotations: Record<string, string> = {}) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name, namespace: ns },
  spec: {
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name }, annotations }, spec: { containers: [{ name, image: "app:1" }] } },
  },
});

interface Backend {
  kubeconfig: string;
  put(kind: string, o: Obj): void;
  get(kind: string, ns: string | null, name: string): Obj | undefined;
  /** The owner's pod-template annotation (a merge patch, as `kubectl patch` sends it). */
  annotate(kind: string, ns: string, name: string, key: string, value: string): void;
  /** Writes so far that tuning makes (not ConfigMaps, Events, Sidecars or Leases). */
  writes(): { verb: string; uri: string }[];
  /** Requests RBAC refused (the real server's audit log). */
  forbidden(): string[];
  stop(): Promise<void>;
}

let seq = 0;
async function realBackend(map: (ns: string) => string): Promise<Backend> {
  const k: RealApiServer = await realApiServer();
  k.installManifests();
  k.kubectl(["apply", "--server-side", "-f", join(ROOT, "manifests", "optional", "tuning-apply.yaml")]);
  const user = "system:serviceaccount:meshtune-system:meshtune-controller";
  const ours = new Set([map("shop"), map("gw")]);
  const start = k.audited(user).length;
  return {
    kubeconfig: k.kubeconfigFor(k.token("meshtune-system", "meshtune-controller"), "meshtune-controller"),
    put(kind, o) {
      const obj: Obj = { apiVersion: API[kind][0], kind: API[kind][1], ...o };
      if (kind === "pods") {
        // No controller-manager here: the pod's ServiceAccount is created by hand.
        const sa = obj.spec?.serviceAccountName;
        if (sa)
          k.kubectl(
            ["apply", "-f", "-"],
            JSON.stringify({
              apiVersion: "v1",
              kind: "ServiceAccount",
              metadata: { name: sa, namespace: obj.metadata.namespace },
            }),
          );
      }
      // kubectl apply (client-side): the objects' fields belong to their owners, as in a cluster.
      k.kubectl(["apply", "-f", "-"], JSON.stringify(obj));
    },
    annotate(kind, ns, name, key, value) {
      // The owner's own pod-template annotation, as `kubectl patch` writes it (manager kubectl-patch).
      const patch = { spec: { template: { metadata: { annotations: { [key]: value } } } } };
      k.kubectl(["patch", PLURAL[kind], name, "-n", ns, "--type=merge", "-p", JSON.stringify(patch)]);
    },
    get(kind, ns, name) {
      try {
        return JSON.parse(
          k.kubectl(["get", PLURAL[kind], name, ...(ns ? ["-n", ns] : []), "-o", "json", "--show-managed-fields"]),
        );
      } catch {
        return undefined;
      }
    },
    writes: () =>
      k
        .audited(user)
        .slice(start)
        .filter(
          (a) =>
            ["create", "patch", "update", "delete"].includes(a.verb) &&
            ours.has(a.namespace) &&
            !["configmaps", "events", "sidecars", "leases"].includes(a.resource),
        ),
    forbidden: () =>
      k
        .audited(user)
        .slice(start)
        .filter((a) => a.code === 403)
        .map((a) => `${a.verb} ${a.group}/${a.resource} ${a.namespace}`),
    stop: async () => {},
  };
}

async function fakeBackend(): Promise<Backend> {
  const fake = await new FakeApiServer().start();
  return {
    kubeconfig: fake.kubeconfig(),
    put: (kind, o) => fake.put(kind, o as never),
    get: (kind, ns, name) => fake.get(kind, ns, name),
    annotate(kind, ns, name, key, value) {
      const o = fake.get(kind, ns, name)!;
      o.spec.template.metadata.annotations[key] = value;
      fake.put(kind, o);
    },
    writes: () =>
      fake.requests
        .filter(
          (r) =>
            ["PATCH", "POST", "DELETE", "PUT"].includes(r.method) &&
            !r.path.includes("configmaps") &&
            !r.path.includes("events") &&
            !r.path.includes("sidecars"),
        )
        .map((r) => ({ verb: r.method.toLowerCase(), uri: `${r.path}?${r.query}` })),
    forbidden: () => [],
    stop: () => fake.stop(),
  };
}

export interface TuningCluster {
  ctl: MeshController;
  ns: { shop: string; gw: string };
  /** Objects by the tests' names ("shop", "gw"). */
  get(kind: string, ns: string | null, name: string): Obj | undefined;
  put(kind: string, o: Obj): void;
  /** The workload owner adds a pod-template annotation of their own. */
  annotateTemplate(ns: string, name: string, key: string, value: string): void;
  writes(): { verb: string; uri: string }[];
  forbidden(): string[];
  outcome(out: TuneOutcome[], kind: string, object: string): TuneOutcome | undefined;
  fq(service: string): string;
  close(): Promise<void>;
}

export async function tuningCluster(
  o: { kinds?: TuneKind[]; dryRun?: boolean; maxRollouts?: number; fake?: boolean } = {},
): Promise<TuningCluster> {
  const n = ++seq;
  const ns = o.fake ? { shop: "shop", gw: "gw" } : { shop: `shop-${process.pid}-${n}`, gw: `gw-${process.pid}-${n}` };
  const map = (x: string) => (x === "shop" ? ns.shop : x === "gw" ? ns.gw : x);
  const b = o.fake ? await fakeBackend() : await realBackend(map);
  const put = (kind: string, obj: Obj) => {
    const m = structuredClone(obj);
    if (kind === "namespaces") m.metadata.name = map(m.metadata.name);
    else if (m.metadata?.namespace) m.metadata.namespace = map(m.metadata.namespace);
    b.put(kind, m);
  };
  put("namespaces", { metadata: { name: "shop", labels: { "meshtune.io/enabled": "true" } } });
  put("namespaces", { metadata: { name: "gw" } });
  for (const s of ["a", "b", "c"])
    put("services", {
      metadata: { name: s, namespace: "shop" },
      spec: { ports: [{ name: "http", port: 8080 }] },
    });
  for (const [w, h] of [
    ["a", "5d9f7c6b8"],
    ["b", "7c8d9e6f5"],
    ["c", "6b7c8d9e4"],
  ]) {
    put("pods", deploymentPod("shop", w, h, "x1y2z", { app: w }));
    // b's owner already sized its sidecar (kubectl apply: the field belongs to them).
    put("deployments", deployment("shop", w, w === "b" ? { "sidecar.istio.io/proxyCPU": "2" } : {}));
  }
  // An ingress gateway (proxy-only pod labelled istio=…), opted in by annotation; one capable node.
  const gwPod = deploymentPod(
    "gw",
    "ingress",
    "5f6a7b8c9",
    "g1h2j",
    { app: "ingress", istio: "ingressgateway" },
    { annotations: { "meshtune.io/enabled": "true" } },
  );
  gwPod.spec.containers = [{ name: "istio-proxy", image: "docker.io/istio/proxyv2:1.27.0" }];
  put("pods", gwPod);
  put("deployments", deployment("gw", "ingress"));
  put("nodes", { metadata: { name: "n1", labels: { "meshtune.io/cryptomb": "true" } } });
  put("nodes", { metadata: { name: "n2", labels: { "meshtune.io/cryptomb": "false" } } });

  const kc = loadKubeConfig(o.fake ? { yaml: b.kubeconfig } : { file: b.kubeconfig });
  const api = objectApi(kc);
  const graph = new Graph();
  calls(graph, ns.shop, "a", ns.shop, "b", 400, 300);
  calls(graph, ns.shop, "b", ns.shop, "c", 400, 200);
  calls(graph, ns.gw, "ingress", ns.shop, "a", 400, 350);
  graph.node(ns.gw, "ingress")!.tlsRequests = 400; // its clients came over TLS (SNI in its log): CryptoMB evidence
  const ctl = new MeshController(
    kc,
    api,
    graph,
    new LearnedStore(api, quiet),
    {
      mode: "apply",
      minWindowMs: H,
      retentionMs: 7 * 24 * H,
      fallback: FALLBACK,
      scope: { ...DEFAULT_SCOPE, meshtuneHosts: [DEFAULT_COLLECTOR_HOST, FALLBACK.host] },
      defaultEnabled: false,
      dryRun: o.dryRun ?? false,
      clusterDomain: D,
      now: () => NOW,
      flushDelayMs: 10,
      applyTuning: o.kinds ?? ["rules", "resources", "cryptomb"],
      istioVersion: [1, 25],
      tuneMinRequests: 100,
      maxRollouts: o.maxRollouts ?? 5,
    },
    quiet,
    new Registry(),
  );
  ctl.leading = true;
  await ctl.start();
  await new Promise((r) => setTimeout(r, 50));
  await ctl.queue.drained(); // reconcile records each workload's first-seen (the observation window)
  const unmap = (s: string) => s.split(`/${ns.shop}/`).join("/shop/").split(`/${ns.gw}/`).join("/gw/");
  return {
    ctl,
    ns,
    get: (kind, n2, name) => b.get(kind, n2 === null ? null : map(n2), name),
    put,
    annotateTemplate: (n2, name, key, value) => b.annotate("deployments", map(n2), name, key, value),
    writes: () => b.writes(),
    forbidden: () => b.forbidden(),
    outcome: (out, kind, object) => out.find((x) => x.kind === kind && unmap(`/${x.object}`).slice(1) === object),
    fq: (s) => `${s}.${ns.shop}.svc.${D}`,
    close: async () => {
      await ctl.stop();
      await b.stop();
    },
  };
}

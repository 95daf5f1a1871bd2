// Workload identity and proxy kind from a Pod object, the way Istio derives them, never from
// names:
//  - workload: istio/istio pkg/kube/util.go GetWorkloadMetaFromPod/GetDeployMetaFromPod: the
//    `service.istio.io/workload-name` label wins; else, for generated pods, the controller owner
//    reference (ReplicaSet named <deployment>-<pod-template-hash> → the Deployment; Job named
//    <cronjob>-<8..10 digits> → the CronJob; StatefulSet/DaemonSet/Job/others → their name);
//    else the pod name. This is what the injector puts in WORKLOAD_NAME.
//  - proxy kind: a sidecar is an injected `istio-proxy` container (or init container, for native
//    sidecars) with the injector's `sidecar.istio.io/status` annotation or that container;
//    gateways and waypoints are recognised by the labels/annotations Istio's own templates and
//    charts set (manifests/charts/gateway: `inject.istio.io/templates: gateway` and the `istio`
//    selector label; istio-discovery files/waypoint.yaml and kube-gateway.yaml:
//    `gateway.istio.io/managed`, `gateway.networking.k8s.io/gateway-name`; older
//    `istio.io/gateway-name`); ztunnel by its chart's `app: ztunnel` + `istio.io/dataplane-mode: none`.
//    Only "sidecar" gets a Sidecar resource: Sidecar does not apply to the others.

export type ProxyKind = "sidecar" | "gateway" | "waypoint" | "ztunnel" | "ambient" | "none" | "unknown";
export interface ProxyInfo {
  kind: ProxyKind;
  why: string;
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const CRONJOB_JOB = /^(.+)-\d{8,10}$/;
/** Labels the pod template adds per revision; never part of a workload selector. */
const GENERATED_LABELS = new Set([
  "pod-template-hash",
  "controller-revision-hash",
  "pod-template-generation",
  "statefulset.kubernetes.io/pod-name",
  "apps.kubernetes.io/pod-index",
  "batch.kubernetes.io/controller-uid",
  "controller-uid",
  "batch.kubernetes.io/job-name",
  "job-name",
  "rollouts-pod-template-hash",
  "security.istio.io/tlsMode",
  "service.istio.io/canonical-name",
  "service.istio.io/canonical-revision",
]);

export function workloadOfPod(pod: Obj): string {
  const md = pod?.metadata ?? {};
  const labels: Record<string, string> = md.labels ?? {};
  if (labels["service.istio.io/workload-name"]) return labels["service.istio.io/workload-name"];
  if (md.generateName) {
    const ref = (md.ownerReferences ?? []).find((r: Obj) => r?.controller === true);
    if (ref?.name) {
      const hash = labels["pod-template-hash"];
      if (ref.kind === "ReplicaSet" && hash && ref.name.endsWith(hash)) return ref.name.slice(0, -(hash.length + 1));
      const rhash = labels["rollouts-pod-template-hash"];
      if (ref.kind === "ReplicaSet" && rhash && ref.name.endsWith(rhash)) return ref.name.slice(0, -(rhash.length + 1));
      if (ref.kind === "ReplicationController" && labels.deploymentconfig) return labels.deploymentconfig;
      if (ref.kind === "Job") {
        const m = CRONJOB_JOB.exec(ref.name);
        if (m) return m[1];
      }
      return ref.name;
    }
  }
  return md.name ?? "";
}

/** The pod template's labels: what a workloadSelector may use (revision-specific labels removed). */
export function selectorOfPod(pod: Obj): Record<string, string> {
  return Object.fromEntries(
    Object.entries((pod?.metadata?.labels ?? {}) as Record<string, string>).filter(([k]) => !GENERATED_LABELS.has(k)),
  );
}

export function proxyOfPod(pod: Obj): ProxyInfo {
  const labels: Record<string, string> = pod?.metadata?.labels ?? {};
  const ann: Record<string, string> = pod?.metadata?.annotations ?? {};
  const templates = (ann["inject.istio.io/templates"] ?? "").split(",").map((s) => s.trim());
  const managed = labels["gateway.istio.io/managed"];
  if (labels.app === "ztunnel" && labels["istio.io/dataplane-mode"] === "none")
    return { kind: "ztunnel", why: "labels app=ztunnel, istio.io/dataplane-mode=none" };
  if (
    templates.includes("waypoint") ||
    managed === "istio.io-mesh-controller" ||
    labels["gateway.networking.k8s.io/gateway-class-name"] === "istio-waypoint" ||
    labels["istio.io/waypoint-for"]
  )
    return {
      kind: "waypoint",
      why: templates.includes("waypoint")
        ? "annotation inject.istio.io/templates=waypoint"
        : "waypoint labels (gateway.istio.io/managed / gateway class)",
    };
  if (templates.includes("gateway")) return { kind: "gateway", why: "annotation inject.istio.io/templates=gateway" };
  if (managed) return { kind: "gateway", why: `label gateway.istio.io/managed=${managed}` };
  if (labels["gateway.networking.k8s.io/gateway-name"] || labels["istio.io/gateway-name"])
    return { kind: "gateway", why: "Gateway API gateway-name label" };
  const containers: Obj[] = [...(pod?.spec?.containers ?? []), ...(pod?.spec?.initContainers ?? [])];
  const hasProxy = containers.some((c) => c?.name === "istio-proxy");
  // Gateway charts inject into a pod whose only container is istio-proxy, selected by `istio: <name>`.
  if (labels.istio && hasProxy && (pod?.spec?.containers ?? []).length === 1)
    return { kind: "gateway", why: `label istio=${labels.istio} on a proxy-only pod` };
  if (hasProxy || ann["sidecar.istio.io/status"]) return { kind: "sidecar", why: "injected istio-proxy sidecar" };
  if (labels["istio.io/dataplane-mode"] === "ambient" || ann["ambient.istio.io/redirection"] === "enabled")
    return { kind: "ambient", why: "ambient pod (istio.io/dataplane-mode / ambient.istio.io/redirection), no sidecar" };
  if (pod?.spec && !pod?.spec?.containers) return { kind: "unknown", why: "pod spec without containers" };
  return pod?.spec
    ? { kind: "none", why: "no istio-proxy container (not injected, or ambient)" }
    : { kind: "unknown", why: "no pod spec" };
}

/**
 * The controller meshtune may patch for a pod's pod template: a Deployment (its ReplicaSet is
 * named "<deployment>-<pod-template-hash>", kubernetes pkg/controller/deployment/sync.go), a
 * StatefulSet or a DaemonSet (apps/v1); else why there is none (bare pods, Jobs, Argo Rollouts…).
 */
export function controllerOfPod(
  pod: Obj,
): { apiVersion: string; kind: string; name: string; namespace: string } | string {
  const md = pod?.metadata ?? {};
  const ref = (md.ownerReferences ?? []).find((r: Obj) => r?.controller === true);
  const ns = md.namespace ?? "default";
  if (!ref) return `pod ${ns}/${md.name} has no controller to patch`;
  const hash = md.labels?.["pod-template-hash"];
  if (ref.kind === "ReplicaSet" && hash && ref.name.endsWith(`-${hash}`))
    return { apiVersion: "apps/v1", kind: "Deployment", name: ref.name.slice(0, -(hash.length + 1)), namespace: ns };
  if (ref.kind === "StatefulSet" || ref.kind === "DaemonSet")
    return { apiVersion: "apps/v1", kind: ref.kind, name: ref.name, namespace: ns };
  return `pod ${ns}/${md.name} is controlled by ${ref.kind} ${ref.name}; meshtune patches only Deployments, StatefulSets and DaemonSets`;
}

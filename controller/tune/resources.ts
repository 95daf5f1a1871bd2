// Sidecar resource recommendations per workload, as the injector reads them: the pod template
// annotations sidecar.istio.io/proxyCPU, proxyCPULimit, proxyMemory, proxyMemoryLimit
// (istio-discovery files/injection-template.yaml sets the istio-proxy container's requests and
// limits from exactly these). VPA does not size injected sidecars (kubernetes/autoscaler #7641,
// #5617), so this is the only sizing the sidecar gets.
// Prior: Istio's published cost, 0.20 vCPU and 60 MB per 1000 requests/s through the proxy
// (istio.io v1.24 docs, ops/deployment/performance-and-scalability), plus an idle floor and a
// config term that grows with the xDS the proxy holds after scoping (meshtune's assumption,
// stated in the output). Calibration: when Prometheus is given, the proxy's observed CPU (p95
// of the 5-minute rate) and peak working set replace the model, with headroom.
// QoS (Kubernetes pkg/apis/core/v1/helper/qos GetPodQOS): a Guaranteed pod needs requests =
// limits on every container, the sidecar included, or it silently becomes Burstable.
export type QosClass = "Guaranteed" | "Burstable" | "BestEffort";
export interface Usage {
  cpuCores: number;
  memoryBytes: number;
}
export interface ResourceRec {
  workload: string;
  namespace: string;
  name: string;
  qos: QosClass | "unknown";
  rps: number;
  annotations: Record<string, string>;
  evidence: string[];
  patch: Record<string, unknown>;
}

const CPU_PER_KRPS = 0.2,
  MB_PER_KRPS = 60;
const IDLE_CPU = 0.01,
  IDLE_MB = 40; // assumption: an idle Envoy with a small config
const KB_PER_CLUSTER = 25,
  KB_PER_ENDPOINT = 2; // assumption: calibrate with Prometheus

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The pod's QoS class as the kubelet computes it (requests default to limits when unset). */
export function qosOf(pod: Obj): QosClass {
  const cs: Obj[] = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  let any = false,
    guaranteed = true;
  for (const c of cs) {
    const req = c.resources?.requests ?? {},
      lim = c.resources?.limits ?? {};
    for (const r of ["cpu", "memory"]) {
      const rq = req[r] ?? lim[r];
      if (rq !== undefined || lim[r] !== undefined) any = true;
      if (lim[r] === undefined || String(rq) !== String(lim[r])) guaranteed = false;
    }
  }
  return !any ? "BestEffort" : guaranteed ? "Guaranteed" : "Burstable";
}

const milli = (cores: number) => `${Math.max(10, Math.ceil(Math.round(cores * 1000) / 10) * 10)}m`; // float noise never rounds up a step
const mi = (mb: number) => `${Math.max(32, Math.ceil(mb / 8) * 8)}Mi`;

export function recommendResources(o: {
  workload: string;
  rps: number;
  clusters: number;
  endpoints: number;
  qos: QosClass | "unknown";
  observed?: Usage;
  kind?: string;
}): ResourceRec {
  const [namespace, name] = o.workload.split("/");
  const ev: string[] = [];
  const modelCpu = IDLE_CPU + CPU_PER_KRPS * (o.rps / 1000);
  const modelMb =
    IDLE_MB + MB_PER_KRPS * (o.rps / 1000) + (o.clusters * KB_PER_CLUSTER + o.endpoints * KB_PER_ENDPOINT) / 1024;
  ev.push(
    `${o.rps.toFixed(2)} requests/s through the proxy (inbound + outbound); model: ${IDLE_CPU} + 0.20 vCPU per 1000 rps = ${modelCpu.toFixed(3)} vCPU, ${IDLE_MB} MB + 60 MB per 1000 rps + config (${o.clusters} clusters, ${o.endpoints} endpoints after scoping) = ${modelMb.toFixed(0)} MB`,
  );
  let cpu = modelCpu,
    mb = modelMb;
  if (o.observed) {
    cpu = o.observed.cpuCores * 1.2;
    mb = (o.observed.memoryBytes / 1048576) * 1.2;
    ev.push(
      `calibrated by Prometheus: istio-proxy p95 CPU ${o.observed.cpuCores.toFixed(3)} cores, peak working set ${(o.observed.memoryBytes / 1048576).toFixed(0)} MiB; +20 % headroom`,
    );
  } else ev.push("not calibrated (no --prometheus): the model alone");
  const ann: Record<string, string> = {
    "sidecar.istio.io/proxyCPU": milli(cpu),
    "sidecar.istio.io/proxyMemory": mi(mb),
  };
  if (o.qos === "Guaranteed") {
    ann["sidecar.istio.io/proxyCPULimit"] = ann["sidecar.istio.io/proxyCPU"];
    ann["sidecar.istio.io/proxyMemoryLimit"] = ann["sidecar.istio.io/proxyMemory"];
    ev.push("Guaranteed pod: limits = requests for the sidecar too, or the pod drops to Burstable");
  } else {
    ann["sidecar.istio.io/proxyCPULimit"] = milli(Math.max(cpu * 4, 0.2));
    ann["sidecar.istio.io/proxyMemoryLimit"] = mi(Math.max(mb * 2, mb + 128));
    ev.push(
      `${o.qos === "unknown" ? "QoS unknown (no pod in --catalog)" : o.qos}: requests < limits; CPU limit 4× (bursts), memory limit 2× or +128 Mi (the proxy is OOM-killed above it)`,
    );
  }
  return {
    workload: o.workload,
    namespace,
    name,
    qos: o.qos,
    rps: o.rps,
    annotations: ann,
    evidence: ev,
    patch: {
      apiVersion: "apps/v1",
      kind: o.kind ?? "Deployment",
      metadata: { name, namespace },
      spec: { template: { metadata: { annotations: ann } } },
    },
  };
}

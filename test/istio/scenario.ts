// Builds the oracle's scenario (test/helpers/istio-oracle.ts) from what meshtune's tests already
// hold: catalog items (Services, Endpoints, ServiceEntries, ...), pods and generated Istio objects.
// Kubernetes objects and Istio configs go to separate streams, as the oracle takes them; Endpoints
// become EndpointSlices (Istio's Kubernetes registry reads only slices); every namespace used gets
// a Namespace object.
import type { OracleProxy, OracleRequest } from "../helpers/istio-oracle.js";

type Obj = Record<string, any>;

const isIstio = (o: Obj) => /\.istio\.io\//.test(String(o.apiVersion ?? ""));

function endpointSlice(ep: Obj): Obj {
  const subsets: Obj[] = ep.subsets ?? [];
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: `${ep.metadata.name}-slice`,
      namespace: ep.metadata.namespace,
      labels: { "kubernetes.io/service-name": ep.metadata.name },
    },
    addressType: "IPv4",
    endpoints: subsets.flatMap((s) =>
      (s.addresses ?? []).map((a: Obj) => ({ addresses: [a.ip], conditions: { ready: true } })),
    ),
    ports: subsets.flatMap((s) => (s.ports ?? []).map((p: Obj) => ({ name: p.name, port: p.port, protocol: "TCP" }))),
  };
}

/** A Service; port names select the protocol as Istio reads them (http-*, grpc-*, tcp-*, or sniffed). */
export function service(ns: string, name: string, clusterIP: string, ports: { port: number; name?: string }[]): Obj {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: ns },
    spec: { clusterIP, ports: ports.map((p) => ({ name: p.name ?? `http-${p.port}`, port: p.port, protocol: "TCP" })) },
  };
}

/** A running pod with its IP, as the registry needs it to find the proxy's own services. */
export function pod(ns: string, name: string, ip: string, labels: Record<string, string>): Obj {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: ns, labels },
    spec: { containers: [{ name: "app", image: "app" }], nodeName: "node-a" },
    status: { phase: "Running", podIP: ip, podIPs: [{ ip }], conditions: [{ type: "Ready", status: "True" }] },
  };
}

// JSON documents: YAML 1.1 readers (Go's) take an unquoted `y` or `no` for a boolean.
const docs = (objs: Obj[]) => objs.map((o) => JSON.stringify(o)).join("\n---\n");

/** The oracle's request for these objects and proxies. */
export function scenario(
  objs: Obj[],
  proxies: OracleProxy[],
  opts: { mesh?: string; analyze?: boolean } = {},
): OracleRequest {
  const kube: Obj[] = [];
  const istio: Obj[] = [];
  const namespaces = new Set<string>();
  for (const o of objs.flatMap((x) => (x.kind === "List" ? (x.items as Obj[]) : [x]))) {
    if (o.metadata?.namespace) namespaces.add(o.metadata.namespace);
    if (isIstio(o)) istio.push(o);
    else if (o.kind === "Endpoints") kube.push(endpointSlice(o));
    else if (o.kind !== "Namespace") kube.push(o);
  }
  for (const p of proxies) namespaces.add(p.namespace);
  const nsObjs = [...namespaces].sort().map((n) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name: n } }));
  return { kube: docs([...nsObjs, ...kube]), configs: docs(istio), mesh: opts.mesh, analyze: opts.analyze, proxies };
}

// `recommend --kubeconfig F [--context C]`: the catalog read from a live cluster instead of a file:
// Pods, Services, EndpointSlices, Nodes, ServiceEntries, VirtualServices, DestinationRules,
// Sidecars, and the mesh config (the `istio` ConfigMap). Read-only; the RBAC it needs is
// manifests/optional/recommend-reader.yaml. The Kubernetes client loads only here, so `recommend`
// without a cluster stays light.
import { UserError } from "../errors.js";
import { meshFromObject, type MeshConfig } from "../istio/mesh-config.js";
import { parse as parseYaml } from "yaml";

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What recommend reads, as [apiVersion, kind]. */
export const LIVE_KINDS: [string, string][] = [
  ["v1", "Namespace"],
  ["v1", "Pod"],
  ["v1", "Service"],
  ["discovery.k8s.io/v1", "EndpointSlice"],
  ["v1", "Node"],
  ["networking.istio.io/v1", "ServiceEntry"],
  ["networking.istio.io/v1", "VirtualService"],
  ["networking.istio.io/v1", "DestinationRule"],
  ["networking.istio.io/v1", "Sidecar"],
];

export async function readLiveCatalog(
  kubeconfig: string,
  context: string | undefined,
  meshConfigMap = "istio-system/istio",
): Promise<{ items: Obj[]; mesh: MeshConfig | null }> {
  const { KubeConfig, KubernetesObjectApi } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(kubeconfig);
    if (context) kc.setCurrentContext(context);
  } catch (e) {
    throw new UserError(`--kubeconfig ${kubeconfig}: ${(e as Error).message}`);
  }
  if (context && !kc.getContexts().some((c) => c.name === context))
    throw new UserError(`--context ${context}: not in ${kubeconfig}`, 2);
  const api = KubernetesObjectApi.makeApiClient(kc);
  const items: Obj[] = [];
  for (const [apiVersion, kind] of LIVE_KINDS) {
    // Pages of 500: a large cluster's pods never come in one response.
    let cont: string | undefined;
    do {
      let page: { items: Obj[]; metadata?: { _continue?: string } };
      try {
        page = (await api.list(
          apiVersion,
          kind,
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          500,
          cont,
        )) as never;
      } catch (e) {
        const code = (e as { code?: number }).code;
        // A cluster without Istio's CRDs has none of these objects; any other refusal is the user's to fix.
        if (code === 404 && apiVersion.includes("istio.io")) break;
        throw new UserError(
          `--kubeconfig: listing ${kind}: ${code === 403 ? "forbidden (bind manifests/optional/recommend-reader.yaml)" : ((e as Error).message ?? String(e)).split("\n")[0]}`,
        );
      }
      for (const o of page.items) items.push({ ...o, apiVersion, kind });
      cont = page.metadata?._continue || undefined;
    } while (cont);
  }
  const [ns, name] = meshConfigMap.split("/");
  let mesh: MeshConfig | null = null;
  try {
    const cm = (await api.read({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: ns } })) as Obj;
    if (typeof cm.data?.mesh === "string") mesh = meshFromObject(parseYaml(cm.data.mesh));
  } catch (e) {
    if ((e as { code?: number }).code !== 404)
      throw new UserError(
        `--kubeconfig: reading the mesh config ${meshConfigMap}: ${(e as Error).message.split("\n")[0]}`,
      );
  }
  return { items, mesh };
}

// Istio mesh config (the `mesh` key of the istio ConfigMap in the root namespace, or a
// MeshConfig YAML): what meshtune's Sidecars must respect and keep in scope.
//  - outboundTrafficPolicy.mode: ALLOW_ANY (default) | REGISTRY_ONLY (meshconfig proto); a
//    Sidecar that sets its own policy overrides the mesh's (pilot/pkg/model/sidecar.go
//    initSidecarScopeInternalIndexes), so REGISTRY_ONLY meshes never get ALLOW_ANY/egressProxy.
//  - extensionProviders[*].<kind>.service: tracing, ext_authz and access-log providers resolve
//    their cluster through the proxy's own scope (pilot/pkg/model/telemetry_logging.go
//    LookupCluster: "ns/host" or a host unique across namespaces), so they must be imported.
import { parse as parseYaml } from "yaml";

export type OutboundMode = "ALLOW_ANY" | "REGISTRY_ONLY";
export interface ProviderService {
  provider: string;
  namespace: string | null;
  host: string;
}
export interface MeshConfig {
  outboundMode: OutboundMode;
  rootNamespace: string;
  providers: ProviderService[];
}

export const DEFAULT_MESH: MeshConfig = { outboundMode: "ALLOW_ANY", rootNamespace: "istio-system", providers: [] };

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** From a ConfigMap (data.mesh), or the mesh YAML/JSON itself. Throws a one-line reason. */
export function parseMeshConfig(text: string): MeshConfig {
  let doc: Obj;
  try {
    doc = parseYaml(text) as Obj;
  } catch (e) {
    throw new Error(`mesh config is not YAML: ${(e as Error).message.split("\n")[0]}`, { cause: e });
  }
  if (!doc || typeof doc !== "object") throw new Error("mesh config is empty");
  if (doc.kind === "ConfigMap") {
    const m = doc.data?.mesh;
    if (typeof m !== "string") throw new Error("ConfigMap has no data.mesh");
    return meshFromObject(parseYaml(m) as Obj);
  }
  return meshFromObject(doc);
}

export function meshFromObject(m: Obj | null | undefined): MeshConfig {
  const out: MeshConfig = { ...DEFAULT_MESH, providers: [] };
  if (!m) return out;
  const mode = m.outboundTrafficPolicy?.mode;
  if (mode === "REGISTRY_ONLY") out.outboundMode = "REGISTRY_ONLY";
  else if (mode !== undefined && mode !== "ALLOW_ANY" && mode !== "ALLOW_ANY_DYNAMIC_DNS")
    throw new Error(`outboundTrafficPolicy.mode ${JSON.stringify(mode)} is not ALLOW_ANY or REGISTRY_ONLY`);
  if (typeof m.rootNamespace === "string" && m.rootNamespace) out.rootNamespace = m.rootNamespace;
  for (const p of Array.isArray(m.extensionProviders) ? m.extensionProviders : []) {
    // Each provider is {name, <kind>: {service, port, ...}}; every kind that calls out has `service`.
    for (const [k, v] of Object.entries(p ?? {})) {
      if (k === "name" || !v || typeof v !== "object" || typeof (v as Obj).service !== "string") continue;
      const svc = (v as Obj).service as string;
      const i = svc.indexOf("/");
      out.providers.push({
        provider: String(p.name ?? k),
        namespace: i < 0 ? null : svc.slice(0, i),
        host: i < 0 ? svc : svc.slice(i + 1),
      });
    }
  }
  return out;
}

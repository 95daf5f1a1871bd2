// Kubernetes access through @kubernetes/client-node: one generic object client
// (discovery-aware; server-side apply) shared by the controller parts.
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from "@kubernetes/client-node";

export const FIELD_MANAGER = "meshtune";

export function loadKubeConfig(opts: { file?: string; yaml?: string } = {}): KubeConfig {
  const kc = new KubeConfig();
  if (opts.yaml) kc.loadFromString(opts.yaml);
  else if (opts.file) kc.loadFromFile(opts.file);
  else kc.loadFromDefault(); // in-cluster service account, or KUBECONFIG / ~/.kube/config
  return kc;
}

export function objectApi(kc: KubeConfig): KubernetesObjectApi {
  return KubernetesObjectApi.makeApiClient(kc);
}

/** Server-side apply with meshtune's field manager; `dryRun` asks the server to validate only. */
export function apply<T extends KubernetesObject>(api: KubernetesObjectApi, obj: T, dryRun = false): Promise<T> {
  return api.patch(obj, undefined, dryRun ? "All" : undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
}

export function isNotFound(e: unknown): boolean {
  return statusCode(e) === 404;
}
export function statusCode(e: unknown): number | undefined {
  const x = e as { code?: number; statusCode?: number; body?: { code?: number } };
  return x?.code ?? x?.statusCode ?? x?.body?.code;
}

/** The API server's Status message of a failed call (first line), else the error's own. */
export function statusMessage(e: unknown): string {
  const x = e as { body?: { message?: string } | string; message?: string };
  const b =
    typeof x.body === "string"
      ? (() => {
          try {
            return JSON.parse(x.body as string);
          } catch {
            return null;
          }
        })()
      : x.body;
  return (b?.message ?? x.message ?? String(e)).split("\n")[0];
}

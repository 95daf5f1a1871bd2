// The controller (MeshController) in the test process against an API server (the fake, or the
// real one), with the options most tests share: bookinfo-style scope, the default fallback host,
// quiet logs. Tests override what they exercise.
import { Registry } from "prom-client";
import { loadKubeConfig, objectApi } from "../../controller/k8s/kube.js";
import { LearnedStore } from "../../controller/k8s/learned-store.js";
import { MeshController, type ControllerOptions } from "../../controller/reconcile/controller.js";
import { Graph } from "../../controller/model/graph.js";
import { DEFAULT_SCOPE } from "../../controller/sidecar/scope.js";

export const quiet = () => {};

export function inProcessController(
  kubeconfigYaml: string,
  over: Partial<ControllerOptions> = {},
  graph = new Graph(),
) {
  const kc = loadKubeConfig({ yaml: kubeconfigYaml });
  const api = objectApi(kc);
  const registry = new Registry();
  const ctl = new MeshController(
    kc,
    api,
    graph,
    new LearnedStore(api, quiet),
    {
      mode: "recommend",
      minWindowMs: 0,
      retentionMs: 1e9,
      fallback: { host: "meshtune-fallback.meshtune-system.svc.cluster.local", port: 80 },
      scope: DEFAULT_SCOPE,
      defaultEnabled: true,
      dryRun: true,
      clusterDomain: "cluster.local",
      ...over,
    },
    quiet,
    registry,
  );
  return { ctl, kc, api, graph, registry };
}

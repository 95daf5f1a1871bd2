// `meshtune fallback`: the egressProxy of scoped Sidecars (fallback/server.ts), with the live
// service catalog (Services, ServiceEntries) to resolve hosts and ports, and the fast-path
// reporter (fallback/reporter.ts) to the collector. Its own Deployment keeps full scope.
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { Registry, collectDefaultMetrics } from "prom-client";
import type { KubernetesObject } from "@kubernetes/client-node";
import { FallbackServer } from "../fallback/server.js";
import { LearnReporter } from "../fallback/reporter.js";
import { HostIndex } from "../istio/hosts.js";
import { catalogItems, parseCatalog } from "../sidecar/catalog.js";
import { loadKubeConfig, objectApi } from "../k8s/kube.js";
import { watchResource } from "../k8s/informer.js";
import { listenAdmin } from "../k8s/admin-server.js";
import { jsonLogger as log } from "../log.js";
import { UserError } from "../errors.js";
import { duration, selfIdentity } from "./controller.js";

export interface FallbackFlags {
  port: string;
  metricsPort: string;
  kubeconfig?: string;
  collector: string;
  tokenFile?: string;
  self?: string;
  clusterDomain: string;
  resolve: string[];
  maxConnections: string;
  idleTimeout: string;
  connectTimeout: string;
  reportDelay: string;
  catalog?: string;
}

/** --resolve "host:port=addr:port" (curl's --resolve, for tests and debugging). */
function resolveMap(entries: string[]): Map<string, { host: string; port: number }> {
  const m = new Map<string, { host: string; port: number }>();
  for (const e of entries) {
    const r = /^([^=\s]+):(\d{1,5})=([^=\s]+):(\d{1,5})$/.exec(e);
    if (!r) throw new UserError(`--resolve ${e}: expected HOST:PORT=ADDR:PORT`, 2);
    m.set(`${r[1].toLowerCase()}:${r[2]}`, { host: r[3], port: Number(r[4]) });
  }
  return m;
}

export async function runFallback(f: FallbackFlags): Promise<void> {
  const self = selfIdentity(f.self, "meshtune-system/meshtune-fallback");
  const maxConnections = Number(f.maxConnections);
  if (!Number.isInteger(maxConnections) || maxConnections < 1)
    throw new UserError(`--max-connections ${f.maxConnections}: expected a positive integer`, 2);
  const pinned = resolveMap(f.resolve);
  const token = f.tokenFile
    ? (() => {
        try {
          return readFileSync(f.tokenFile!, "utf8").trim();
        } catch (e) {
          throw new UserError(`--token-file ${f.tokenFile}: ${(e as Error).message}`);
        }
      })()
    : null;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "meshtune_" });

  // The catalog: Services and ServiceEntries, the index rebuilt lazily after each change; or a
  // fixed catalog file (--catalog: debugging and benches, no API server).
  const objects = new Map<string, KubernetesObject>();
  let index: HostIndex | null = null;
  let stopped = false;
  let ready = false;
  if (f.catalog) {
    let text: string;
    try {
      text = readFileSync(f.catalog, "utf8");
    } catch (e) {
      throw new UserError(`--catalog ${f.catalog}: ${(e as Error).message}`);
    }
    let items: KubernetesObject[];
    try {
      items = catalogItems(text) as KubernetesObject[];
    } catch (e) {
      throw new UserError(`--catalog ${f.catalog}: ${(e as Error).message}`);
    }
    items.forEach((o, i) => objects.set(String(i), o));
    ready = true;
  }
  const kc = f.catalog ? null : loadKubeConfig({ file: f.kubeconfig });
  const api = kc ? objectApi(kc) : null;
  const changed = (t: string, o: KubernetesObject) => {
    const k = `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
    if (t === "delete") objects.delete(k);
    else objects.set(k, o);
    index = null;
  };
  if (kc && api) {
    const watches = [
      watchResource(
        kc,
        "/api/v1/services",
        () => api.list("v1", "Service"),
        changed,
        log,
        () => stopped,
        "Service",
      ),
      watchResource(
        kc,
        "/apis/networking.istio.io/v1beta1/serviceentries",
        () => api.list("networking.istio.io/v1beta1", "ServiceEntry"),
        changed,
        log,
        () => stopped,
        "ServiceEntry",
      ),
    ];
    Promise.all(watches.map((w) => w.synced)).then(() => {
      ready = true;
      log("info", "catalog synced; ready", {});
    });
  }

  const reporter = new LearnReporter(
    {
      url: f.collector,
      headers: (): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {}),
      delayMs: duration("--report-delay", f.reportDelay),
    },
    registry,
    (m) => log("warn", m, {}),
  );
  const server = new FallbackServer(
    {
      self,
      clusterDomain: f.clusterDomain,
      index: () => (index ??= new HostIndex(parseCatalog({ items: [...objects.values()] }, f.clusterDomain))),
      connect: (host, port) => {
        const p = pinned.get(`${host}:${port}`);
        return p ? connect(p.port, p.host) : connect(port, host);
      },
      learn: (l) => reporter.add(l),
      ready: () => ready,
      maxConnections,
      idleTimeoutMs: duration("--idle-timeout", f.idleTimeout),
      connectTimeoutMs: duration("--connect-timeout", f.connectTimeout),
    },
    registry,
  );
  const port = await server.listen(Number(f.port));
  const admin = await listenAdmin(Number(f.metricsPort), registry, () => (ready ? null : "waiting for catalog sync"));
  log("info", "meshtune fallback listening", {
    port,
    metricsPort: (admin.address() as { port: number }).port,
    self: `${self.namespace}/${self.serviceAccount}`,
    collector: f.collector,
  });
  const shutdown = async () => {
    stopped = true;
    await reporter.flush();
    reporter.stop();
    await server.close();
    admin.close();
    process.exit(0);
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

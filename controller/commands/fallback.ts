// `meshtune fallback`: the egressProxy of scoped Sidecars (fallback/server.ts), with the live
// service catalog (Services, ServiceEntries) to resolve hosts and ports, and the fast-path
// reporter (fallback/reporter.ts) to the collector. Its own Deployment keeps full scope.
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { Registry, collectDefaultMetrics } from "prom-client";
import type { KubernetesObject } from "@kubernetes/client-node";
import { networkInterfaces } from "node:os";
import type { V1Pod } from "@kubernetes/client-node";
import { FallbackServer } from "../fallback/server.js";
import type { DestinationPods, Policy } from "../fallback/authz.js";
import { refusedAddress } from "../fallback/address.js";
import type { RouteContext } from "../fallback/route.js";
import { LearnReporter } from "../fallback/reporter.js";
import { TokenFile } from "../collector/token-file.js";
import { HostIndex } from "../istio/hosts.js";
import { catalogItems, parseCatalog } from "../sidecar/catalog.js";
import { loadKubeConfig, objectApi } from "../k8s/kube.js";
import { watchResource } from "../k8s/informer.js";
import { listenAdmin } from "../k8s/admin-server.js";
import { jsonLogger as log } from "../log.js";
import { UserError } from "../errors.js";
import { duration } from "./common-flags.js";
import { selfIdentity } from "../collector/caller.js";

export interface FallbackFlags {
  trustDomain: string;
  rootNamespace: string;
  maxConnectionsPerSource: string;
  headersTimeout: string;
  maxConnectionAge: string;
  denyNamespace?: string[];
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
  decisionTtl?: string;
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

function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} ${v}: expected a positive integer`, 2);
  return n;
}

export async function runFallback(f: FallbackFlags): Promise<void> {
  const self = selfIdentity(f.self, "meshtune-system/meshtune-fallback");
  const maxConnections = Number(f.maxConnections);
  if (!Number.isInteger(maxConnections) || maxConnections < 1)
    throw new UserError(`--max-connections ${f.maxConnections}: expected a positive integer`, 2);
  const pinned = resolveMap(f.resolve);
  const token = f.tokenFile ? new TokenFile(f.tokenFile) : null;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "meshtune_" });

  // The registry (Services, ServiceEntries), the pods that name callers, and the
  // AuthorizationPolicies a forward must pass: watched, or a fixed file (--catalog: debugging
  // and benches, no API server; it may hold Pods and AuthorizationPolicies too).
  const objects = new Map<string, KubernetesObject>();
  const podsByIp = new Map<string, { namespace: string; serviceAccount: string; key: string }>();
  const policies = new Map<string, Policy>();
  let index: HostIndex | null = null;
  // ServiceEntries by host, rebuilt with the index after a change (not a scan per request).
  let entries: Map<string, ServiceEntryObj[]> | null = null;
  let stopped = false;
  let ready = false;
  // One RouteContext per state of the informers: a new object is what tells the fallback's
  // decision cache (fallback/decision-cache.ts) that what it decided may no longer hold.
  let context: RouteContext | null = null;
  const changed = (t: string, o: KubernetesObject) => {
    const k = `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
    if (o.kind === "Pod") return podChanged(t, o as V1Pod, k);
    context = null; // the fallback's cached decisions end with the context they were made under
    if (o.kind === "AuthorizationPolicy") {
      if (t === "delete") policies.delete(k);
      else policies.set(k, o as Policy);
      return;
    }
    if (t === "delete") objects.delete(k);
    else objects.set(k, o);
    index = null;
    entries = null;
  };
  const podChanged = (t: string, p: V1Pod, k: string) => {
    for (const [ip, v] of podsByIp) if (v.key === k) podsByIp.delete(ip);
    // Host-network pods share the node's address, and a finished pod's address may be someone
    // else's now: neither is ever an identity.
    if (t === "delete" || p.spec?.hostNetwork || p.status?.phase === "Succeeded" || p.status?.phase === "Failed")
      return;
    for (const ip of (p.status?.podIPs ?? []).map((x) => x.ip).concat(p.status?.podIP ?? []))
      if (ip)
        podsByIp.set(ip, {
          namespace: p.metadata?.namespace ?? "",
          serviceAccount: p.spec?.serviceAccountName ?? "default",
          key: k,
        });
  };
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
    for (const o of items) changed("add", o);
    ready = true;
  }
  const kc = f.catalog ? null : loadKubeConfig({ file: f.kubeconfig });
  const api = kc ? objectApi(kc) : null;
  if (kc && api) {
    const watch = (path: string, apiVersion: string, kind: string) =>
      watchResource(
        kc,
        path,
        () => api.list(apiVersion, kind),
        changed,
        log,
        () => stopped,
        kind,
      );
    const watches = [
      watch("/api/v1/services", "v1", "Service"),
      watch("/apis/networking.istio.io/v1beta1/serviceentries", "networking.istio.io/v1beta1", "ServiceEntry"),
      watch("/api/v1/pods", "v1", "Pod"),
      watch("/apis/security.istio.io/v1/authorizationpolicies", "security.istio.io/v1", "AuthorizationPolicy"),
    ];
    Promise.all(watches.map((w) => w.synced)).then(() => {
      ready = true;
      log("info", "catalog synced; ready", {});
    });
  }

  const reporter = new LearnReporter(
    {
      url: f.collector,
      headers: (): Record<string, string> => token?.headers() ?? {},
      reauth: token?.reauth,
      delayMs: duration("--report-delay", f.reportDelay),
    },
    registry,
    log,
  );
  const denyNamespaces = new Set([self.namespace, ...(f.denyNamespace ?? [])]);
  const ownAddresses = new Set(
    Object.values(networkInterfaces())
      .flat()
      .map((a) => a?.address ?? "")
      .filter((a) => a && !a.startsWith("127.") && a !== "::1"),
  );
  const catalogIndex = () => (index ??= new HostIndex(parseCatalog({ items: [...objects.values()] }, f.clusterDomain)));
  const entriesOf = (host: string) => (entries ??= entriesByHost(objects)).get(host) ?? [];
  const server = new FallbackServer(
    {
      context: () =>
        (context ??= {
          index: catalogIndex(),
          clusterDomain: f.clusterDomain,
          trustDomain: f.trustDomain,
          rootNamespace: f.rootNamespace,
          denyNamespaces,
          policies: () => [...policies.values()],
          destination: (host) => destinationPods(host, objects, entriesOf(host), f.clusterDomain),
          hazard: (host) => hazardOf(host, objects, entriesOf(host), f.clusterDomain, ownAddresses),
          pinned: (host, port) => pinned.has(`${host}:${port}`),
          ownAddresses,
        }),
      podOf: (ip) => podsByIp.get(ip) ?? null,
      connect: (host, port) => {
        const p = pinned.get(`${host}:${port}`);
        return p ? connect(p.port, p.host) : connect(port, host);
      },
      learn: (l) => reporter.add(l),
      ready: () => ready,
      maxConnections,
      maxConnectionsPerSource: positive("--max-connections-per-source", f.maxConnectionsPerSource),
      headersTimeoutMs: duration("--headers-timeout", f.headersTimeout),
      maxConnectionMs: duration("--max-connection-age", f.maxConnectionAge),
      idleTimeoutMs: duration("--idle-timeout", f.idleTimeout),
      connectTimeoutMs: duration("--connect-timeout", f.connectTimeout),
      decisionTtlMs: duration("--decision-ttl", f.decisionTtl ?? "5s"),
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

/**
 * The pods behind a registry host, for AuthorizationPolicy selection: a Service's selector (every
 * backing pod carries those labels); a MESH_INTERNAL ServiceEntry's workloadSelector, else unknown
 * labels in its namespace; null for MESH_EXTERNAL (no sidecar of the mesh serves it).
 */
type ServiceEntryObj = KubernetesObject & {
  spec?: {
    hosts?: string[];
    location?: string;
    workloadSelector?: { labels?: Record<string, string> };
    endpoints?: { address?: string }[];
  };
};

function entriesByHost(objects: Map<string, KubernetesObject>): Map<string, ServiceEntryObj[]> {
  const m = new Map<string, ServiceEntryObj[]>();
  for (const o of objects.values())
    if (o.kind === "ServiceEntry")
      for (const h of (o as ServiceEntryObj).spec?.hosts ?? []) m.set(h, [...(m.get(h) ?? []), o as ServiceEntryObj]);
  return m;
}

function destinationPods(
  host: string,
  objects: Map<string, KubernetesObject>,
  entries: ServiceEntryObj[],
  domain: string,
): DestinationPods | null {
  const svc = serviceOfHost(host, domain);
  if (svc) {
    const o = objects.get(`Service/${svc[2]}/${svc[1]}`) as
      { spec?: { selector?: Record<string, string> } } | undefined;
    return {
      namespace: svc[2],
      labels: o?.spec?.selector && Object.keys(o.spec.selector).length ? o.spec.selector : null,
    };
  }
  const se = entries[0];
  if (!se || (se.spec?.location ?? "MESH_EXTERNAL") === "MESH_EXTERNAL") return null;
  return { namespace: se.metadata?.namespace ?? "", labels: se.spec?.workloadSelector?.labels ?? null };
}

/**
 * Why the fallback cannot vouch for where a registry host leads, or null. Its sidecar routes by
 * its own view: a Service without a selector goes wherever its EndpointSlices say (any pod, in
 * any namespace), a ServiceEntry to its listed endpoints, and a host defined more than once to
 * whichever definition wins. The policies checked would then be the wrong ones.
 */
function hazardOf(
  host: string,
  objects: Map<string, KubernetesObject>,
  entries: ServiceEntryObj[],
  domain: string,
  own: ReadonlySet<string>,
): string | null {
  const svc = serviceOfHost(host, domain);
  if (svc) {
    const o = objects.get(`Service/${svc[2]}/${svc[1]}`) as
      { spec?: { selector?: Record<string, string>; type?: string } } | undefined;
    if (o && o.spec?.type === "ExternalName") return "an ExternalName Service (its target is any DNS name)";
    if (o && !Object.keys(o.spec?.selector ?? {}).length)
      return "a Service without a selector (its endpoints are whatever its EndpointSlices list)";
  }
  const defs: string[] = [];
  for (const se of entries) {
    defs.push(`${se.metadata?.namespace}/${se.metadata?.name}`);
    for (const e of se.spec?.endpoints ?? []) {
      const why = e.address && !e.address.includes("/") ? refusedAddress(e.address, own, true) : null;
      if (why) return `ServiceEntry ${defs.at(-1)} lists endpoint ${e.address} (${why})`;
    }
  }
  if (defs.length > 1 || (defs.length && svc)) return `defined more than once (${defs.join(", ")})`;
  return null;
}

/** "name.ns.svc.<domain>" → [all, name, ns]; null for other hosts. */
function serviceOfHost(host: string, domain: string): RegExpExecArray | null {
  return new RegExp(`^([^.]+)\\.([^.]+)\\.svc\\.${domain.replace(/\./g, "\\.")}$`).exec(host);
}

// Where (and whether) the fallback forwards a request for a verified caller. Only names are
// routed, never addresses (fallback/address.ts). A registry host (Service or ServiceEntry) must
// be visible to the caller's namespace (exportTo) and provably admit the caller by the
// destination's AuthorizationPolicies (fallback/authz.ts); otherwise the fallback does not
// forward, and says whether learning the host for the caller is the way on (the caller's next
// request then goes direct, under its own identity). meshtune's own namespace (controller,
// fallback) is never a destination: no loops, no reports made in the fallback's name. A name
// outside the registry (an ALLOW_ANY destination) is resolved here and forwarded only to a
// public address it resolved to, dialled as that address (no second lookup to rebind).
import { lookup as dnsLookup } from "node:dns/promises";
import { hostNamespace } from "../model/cluster-name.js";
import { resolveTarget } from "./resolve.js";
import { fqdnError } from "../istio/validate.js";
import { addressLike, refusedAddress } from "./address.js";
import { authorize, type DestinationPods, type Policy } from "./authz.js";
import type { HostIndex } from "../istio/hosts.js";

export interface VerifiedCaller {
  namespace: string;
  serviceAccount: string;
  podIp: string;
}

export interface RouteContext {
  index: HostIndex;
  clusterDomain: string;
  trustDomain: string;
  rootNamespace: string;
  /** Namespaces that are never destinations (meshtune's own). */
  denyNamespaces: ReadonlySet<string>;
  policies: () => Policy[];
  /** The pods behind a registry host (Service selector), null when no mesh workload serves it (MESH_EXTERNAL). */
  destination: (host: string) => DestinationPods | null;
  lookup?: (host: string) => Promise<string[]>;
  ownAddresses?: ReadonlySet<string>;
  /** Why the fallback cannot vouch for where a registry host leads (selectorless Service, endpoints it may not reach), or null. */
  hazard?: (host: string) => string | null;
  /** An operator's fixed address for host:port (--resolve): trusted, not looked up. */
  pinned?: (host: string, port: number) => boolean;
}

export type Route =
  | { ok: true; host: string; port: number; registered: boolean; dial: string }
  | {
      ok: false;
      status: 400 | 403 | 502 | 503;
      reason: "bad-host" | "address-host" | "meshtune-endpoint" | "not-exported" | "policy" | "refused-address" | "dns";
      detail: string;
      /** Learn host:port for the caller anyway: its next request goes direct and meets the real policy. */
      learn?: { host: string; port: number; registered: boolean };
    };

const LOOKUP_TIMEOUT_MS = 2000;
const defaultLookup = async (host: string) => (await dnsLookup(host, { all: true })).map((a) => a.address);

/** Resolve with a deadline (getaddrinfo runs on libuv's small thread pool: a slow name must not hold it). */
async function resolveVetted(
  host: string,
  c: RouteContext,
  registry: boolean,
): Promise<
  { ok: true; address: string } | { ok: false; status: 403 | 502; reason: "refused-address" | "dns"; detail: string }
> {
  let addrs: string[];
  let timer: NodeJS.Timeout | undefined;
  try {
    addrs = await Promise.race([
      (c.lookup ?? defaultLookup)(host),
      new Promise<never>(
        (_, j) =>
          (timer = setTimeout(() => j(new Error(`lookup timed out after ${LOOKUP_TIMEOUT_MS} ms`)), LOOKUP_TIMEOUT_MS)),
      ),
    ]);
  } catch (e) {
    return { ok: false, status: 502, reason: "dns", detail: `${host}: ${(e as Error).message.split("\n")[0]}` };
  } finally {
    clearTimeout(timer);
  }
  if (!addrs.length) return { ok: false, status: 502, reason: "dns", detail: `${host}: no address` };
  for (const a of addrs) {
    const why = refusedAddress(a, c.ownAddresses, registry);
    if (why)
      return {
        ok: false,
        status: 403,
        reason: "refused-address",
        detail: `${host} resolves to ${a} (${why})${registry ? "" : "; register it with a ServiceEntry to reach it"}`,
      };
  }
  return { ok: true, address: addrs[0] };
}

export async function route(
  name: string,
  caller: VerifiedCaller,
  proto: "HTTP" | "TLS",
  c: RouteContext,
): Promise<Route> {
  const bare = name.trim().replace(/:\d{1,5}$/, "");
  if (addressLike(bare) || addressLike(bare.replace(/^\[|\]$/g, "")))
    return {
      ok: false,
      status: 400,
      reason: "address-host",
      detail: `${JSON.stringify(bare)} is an address; only registry names are forwarded`,
    };
  if (/(^|\.)localhost\.?$/i.test(bare))
    return { ok: false, status: 400, reason: "address-host", detail: `${JSON.stringify(bare)} names this pod` };
  const t = resolveTarget(name, caller.namespace, proto, c.index, c.clusterDomain);
  if (typeof t === "string") return { ok: false, status: 400, reason: "bad-host", detail: t };
  const owner = hostNamespace(t.host, c.clusterDomain) ?? (t.registered ? c.index.namespaceOf(t.host) : null);
  if (owner && c.denyNamespaces.has(owner))
    return {
      ok: false,
      status: 403,
      reason: "meshtune-endpoint",
      detail: `${t.host} is meshtune's own; never forwarded`,
    };
  if (t.registered) {
    if (c.index.exportedTo(t.host, caller.namespace) === false)
      return {
        ok: false,
        status: 403,
        reason: "not-exported",
        detail: `${t.host} is not exported to namespace ${caller.namespace}`,
      };
    const learn = { host: t.host, port: t.port, registered: true };
    const hazard = c.hazard?.(t.host) ?? null;
    if (hazard)
      return {
        ok: false,
        status: 503,
        reason: "policy",
        detail: `${t.host}: ${hazard}; the fallback cannot vouch for where it leads (learned: the next request goes direct)`,
        learn,
      };
    const dest = c.destination(t.host);
    if (dest) {
      const v = authorize({ ...caller, trustDomain: c.trustDomain }, dest, c.policies(), c.rootNamespace);
      if (!v.allowed)
        return {
          ok: false,
          status: v.proven ? 403 : 503,
          reason: "policy",
          detail: `${t.host}: ${v.reason}; the fallback does not carry a caller past a policy it cannot prove admits it (learned: the next request goes direct)`,
          learn,
        };
    }
    if (c.pinned?.(t.host, t.port)) return { ok: true, ...learn, dial: t.host };
    // Dialled at the address checked here, never by name again (no second lookup to rebind).
    const a = await resolveVetted(t.host, c, true);
    return a.ok ? { ok: true, ...learn, dial: a.address } : a;
  }
  // Outside the registry only a name Istio would accept as a host goes to a resolver: nothing
  // with '@', '%', spaces or other bytes a resolver may read its own way (ValidateFQDN).
  const invalid = fqdnError(t.host);
  if (invalid) return { ok: false, status: 400, reason: "bad-host", detail: invalid };
  // Outside the registry: never a name of the cluster's own DNS (pod, headless-service records).
  if (t.host === c.clusterDomain || t.host.endsWith(`.${c.clusterDomain}`))
    return { ok: false, status: 403, reason: "not-exported", detail: `${t.host} is not a Service this mesh knows` };
  if (c.pinned?.(t.host, t.port)) return { ok: true, host: t.host, port: t.port, registered: false, dial: t.host };
  const a = await resolveVetted(t.host, c, false);
  return a.ok ? { ok: true, host: t.host, port: t.port, registered: false, dial: a.address } : a;
}

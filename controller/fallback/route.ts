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

const defaultLookup = async (host: string) => (await dnsLookup(host, { all: true })).map((a) => a.address);

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
    const dest = c.destination(t.host);
    if (dest) {
      const v = authorize({ ...caller, trustDomain: c.trustDomain }, dest, c.policies(), c.rootNamespace);
      if (!v.allowed)
        return {
          ok: false,
          status: v.proven ? 403 : 503,
          reason: "policy",
          detail: `${t.host}: ${v.reason}; the fallback does not carry a caller past a policy it cannot prove admits it (learned: the next request goes direct)`,
          learn: { host: t.host, port: t.port, registered: true },
        };
    }
    return { ok: true, host: t.host, port: t.port, registered: true, dial: t.host };
  }
  if (hostNamespace(t.host, c.clusterDomain))
    return { ok: false, status: 403, reason: "not-exported", detail: `${t.host} is not a Service this mesh knows` };
  let addrs: string[];
  try {
    addrs = await (c.lookup ?? defaultLookup)(t.host);
  } catch (e) {
    return { ok: false, status: 502, reason: "dns", detail: `${t.host}: ${(e as Error).message.split("\n")[0]}` };
  }
  for (const a of addrs) {
    const why = refusedAddress(a, c.ownAddresses);
    if (why)
      return {
        ok: false,
        status: 403,
        reason: "refused-address",
        detail: `${t.host} resolves to ${a} (${why}); register it with a ServiceEntry to reach it`,
      };
  }
  if (!addrs.length) return { ok: false, status: 502, reason: "dns", detail: `${t.host}: no address` };
  return { ok: true, host: t.host, port: t.port, registered: false, dial: addrs[0] };
}

// Who is calling the collector. Two trusted ways, nothing else:
//  1. Mesh identity. The controller runs with an Istio sidecar under STRICT mTLS. Its inbound
//     HTTP connection manager uses forward_client_cert_details APPEND_FORWARD with URI details
//     (istio pilot/pkg/networking/util/proxy_headers.go GetProxyHeadersFromProxyConfig;
//     core/listener_inbound.go buildSidecarInboundHTTPOpts). Envoy removes any XFCC header on a
//     connection without a client certificate and otherwise appends its own element
//     "By=<our SPIFFE>;Hash=…;Subject=…;URI=<peer SPIFFE>" (envoy source/common/http/
//     conn_manager_utility.cc mutateXfccRequestHeader), so only the LAST element is the proxy's.
//     It is trusted only on connections from 127.0.0.6 / ::6, the source address Istio binds
//     its inbound clusters to (core/listener_address.go InboundPassthroughBindIpv4,
//     core/cluster_builder.go upstream_bind_config); anything else (a port-forward from
//     127.0.0.1, a pod on an excluded port) could have written the header itself.
//  2. A Kubernetes bearer token (node agents on the host network; people), via TokenReview.
import type { IncomingMessage } from "node:http";
import {
  NS_RE,
  SA_RE,
  parseServiceAccountUser,
  serviceAccountUser,
  type AccessReviewer,
  type UserInfo,
} from "../k8s/access-review.js";

export interface Caller {
  namespace: string;
  serviceAccount: string;
  user: UserInfo;
  via: "mesh" | "token" | "insecure";
}

export interface Identity {
  namespace: string;
  serviceAccount: string;
}

const IDENTITY = new RegExp(`^(${NS_RE})/(${SA_RE})$`);
/** "NAMESPACE/SERVICEACCOUNT" → Identity; null when malformed. */
export function parseIdentity(s: string): Identity | null {
  const m = IDENTITY.exec(s);
  return m ? { namespace: m[1], serviceAccount: m[2] } : null;
}

const PROXY_PEERS = new Set(["127.0.0.6", "::6", "::ffff:127.0.0.6"]);
const SPIFFE = new RegExp(`^spiffe://[^/]+/ns/(${NS_RE})/sa/(${SA_RE})$`);

/** Split an XFCC value into elements (",") and key=value pairs (";"), honouring quoted values. */
export function parseXfcc(v: string): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  let cur: Record<string, string> = {},
    key = "",
    val = "",
    inKey = true,
    quoted = false;
  const put = () => {
    if (key) cur[key.trim()] = val;
    key = "";
    val = "";
    inKey = true;
  };
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (quoted) {
      if (c === "\\" && i + 1 < v.length) {
        val += v[++i];
        continue;
      }
      if (c === '"') {
        quoted = false;
        continue;
      }
      val += c;
      continue;
    }
    if (c === '"' && !inKey) {
      quoted = true;
      continue;
    }
    if (c === "=" && inKey) {
      inKey = false;
      continue;
    }
    if (c === ";") {
      put();
      continue;
    }
    if (c === ",") {
      put();
      out.push(cur);
      cur = {};
      continue;
    }
    if (inKey) key += c;
    else val += c;
  }
  put();
  out.push(cur);
  return out;
}

export type CallerResult =
  | { ok: true; caller: Caller }
  | { ok: false; status: 401 | 503; reason: "unauthenticated" | "auth-unavailable"; detail: string };

/**
 * Identify the caller of `req`. `self` is this controller's own identity: the proxy's element
 * must say By=<self>, so an element a client wrote cannot pass for the proxy's.
 */
/**
 * The mesh peer as this pod's own inbound proxy vouches for it: the last XFCC element, on a
 * connection from the proxy's bind address, written By=<self>. null: not through the proxy (no
 * header or another source); a string: why the header cannot be trusted.
 */
export function proxyPeer(xfcc: string | string[] | undefined, peer: string, self: Identity): Identity | string | null {
  if (!PROXY_PEERS.has(peer)) return null;
  return xfccPeer(xfcc, self);
}

/** The peer named by the last XFCC element if this pod's proxy wrote it (By=<self>); the caller decides whether the source may be trusted. */
export function xfccPeer(xfcc: string | string[] | undefined, self: Identity): Identity | string | null {
  if (typeof xfcc !== "string") return null;
  const els = parseXfcc(xfcc);
  const last = els[els.length - 1];
  const by = SPIFFE.exec(last.By ?? ""),
    uri = SPIFFE.exec(last.URI ?? "");
  if (!by || by[1] !== self.namespace || by[2] !== self.serviceAccount)
    return "x-forwarded-client-cert was not set by this pod's proxy";
  if (!uri) return "peer certificate has no SPIFFE URI";
  return { namespace: uri[1], serviceAccount: uri[2] };
}

/** Whether `peer` is the inbound proxy's bind address (REDIRECT mode: the caller's address is not seen). */
export function isProxyPeer(peer: string): boolean {
  return PROXY_PEERS.has(peer);
}

export async function identify(
  req: IncomingMessage,
  self: Identity,
  reviewer: AccessReviewer | null,
): Promise<CallerResult> {
  const mesh = proxyPeer(req.headers["x-forwarded-client-cert"], req.socket.remoteAddress ?? "", self);
  if (typeof mesh === "string") return { ok: false, status: 401, reason: "unauthenticated", detail: mesh };
  if (mesh)
    return {
      ok: true,
      caller: { ...mesh, user: serviceAccountUser(mesh.namespace, mesh.serviceAccount), via: "mesh" },
    };
  const auth = req.headers.authorization;
  const m = typeof auth === "string" ? /^Bearer ([A-Za-z0-9._~+/=-]{1,8192})$/.exec(auth) : null;
  if (m && reviewer) {
    let user: UserInfo | null;
    try {
      user = await reviewer.authenticate(m[1]);
    } catch (e) {
      return {
        ok: false,
        status: 503,
        reason: "auth-unavailable",
        detail: `TokenReview failed: ${(e as Error).message.split("\n")[0]}`,
      };
    }
    if (!user)
      return { ok: false, status: 401, reason: "unauthenticated", detail: "bearer token rejected by TokenReview" };
    const sa = parseServiceAccountUser(user.username);
    return { ok: true, caller: { namespace: sa?.[0] ?? "", serviceAccount: sa?.[1] ?? "", user, via: "token" } };
  }
  return {
    ok: false,
    status: 401,
    reason: "unauthenticated",
    detail: "no mesh identity (mTLS via this pod's sidecar) and no bearer token",
  };
}

// Who is calling the collector. Two trusted ways, nothing else:
//  1. Mesh identity. The controller runs with an Istio sidecar under STRICT mTLS, interception
//     REDIRECT and forwardedClientCert SANITIZE_SET pinned on its pod (manifests/controller.yaml).
//     Envoy removes any XFCC on a connection without a client certificate and otherwise writes
//     its own element "By=<our SPIFFE>;Hash=<hex>;Subject=\"…\";URI=<peer SPIFFE>"
//     (envoy source/common/http/conn_manager_utility.cc mutateXfccRequestHeader): alone under
//     SANITIZE_SET, appended after the client's bytes under Istio's default APPEND_FORWARD.
//     The trust parse reads that element from the right, anchored to its exact shape
//     (xfccPeer); the client's part is never parsed. It is trusted only on connections from
//     127.0.0.6 / ::6, the source Istio binds its inbound clusters to under REDIRECT with the
//     default inboundTrafficPolicy PASSTHROUGH (core/listener_address.go
//     InboundPassthroughBindIpv4, core/cluster_builder.go upstream_bind_config); LOCALHOST mode
//     shows 127.0.0.1 and TPROXY the caller's address (listener_inbound.go original_src), where
//     the app cannot tell the proxy from a client on an excluded port: such reports are refused
//     as `unexpected-source`, retryably, with the likely mesh setting named.
//  2. A Kubernetes bearer token (node agents on the host network; people), via TokenReview.
import type { IncomingMessage } from "node:http";
import { UserError } from "../errors.js";
import {
  NODE_NAME_EXTRA,
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
  /** The node a pod-bound token names (agents); never taken from a request body. */
  node?: string;
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
const esc = (v: string) => v.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** A SPIFFE ID as Envoy prints it: no separator of the XFCC grammar (",", ";", "\"", "=") can occur in it. */
const SPIFFE_ID = (ns: string, sa: string) => `spiffe://[^/,;"=\\s]+/ns/${ns}/sa/${sa}`;

/**
 * The element this pod's own sidecar appended, read from the right end of the header and
 * anchored to the exact shape Envoy writes for Istio's inbound HCM (Istio sets Subject, URI and
 * DNS details; Envoy emits By, Hash = hex SHA-256 of the peer certificate, Subject="…", URI, then
 * one DNS= per DNS SAN, joined by ";" and appended after "," — conn_manager_utility.cc
 * mutateXfccRequestHeader). Whatever the client wrote before it is never parsed: Envoy neither
 * escapes nor validates it, so a quote-aware split can be made to swallow the proxy's element
 * (an unterminated quote). Under SANITIZE_SET the element is the whole header; under
 * APPEND_FORWARD it follows the client's text and a ",".
 */
function tailPattern(self: Identity): RegExp {
  return new RegExp(
    `(?:^|,)By=${SPIFFE_ID(esc(self.namespace), esc(self.serviceAccount))};Hash=[0-9a-f]{64};Subject="[^"]*";` +
      `URI=(${SPIFFE_ID(`(${NS_RE})`, `(${SA_RE})`)})(?:;DNS=[^,;"=\\s]*)*$`,
  );
}
const tails = new Map<string, RegExp>();

/**
 * The mesh peer as this pod's own inbound proxy vouches for it, on a connection from the proxy's
 * bind address. null: not through the proxy (no header, or another source); a string: why the
 * header cannot be trusted.
 */
export function proxyPeer(xfcc: string | string[] | undefined, peer: string, self: Identity): Identity | string | null {
  if (!PROXY_PEERS.has(peer)) return null;
  return xfccPeer(xfcc, self);
}

/** The peer named by the element this pod's proxy appended (By=<self>, Envoy's exact shape, at the end of the header); the caller decides whether the source may be trusted. */
export function xfccPeer(xfcc: string | string[] | undefined, self: Identity): Identity | string | null {
  if (xfcc === undefined) return null;
  if (typeof xfcc !== "string") return "more than one x-forwarded-client-cert header";
  const key = `${self.namespace}/${self.serviceAccount}`;
  let re = tails.get(key);
  if (!re) tails.set(key, (re = tailPattern(self)));
  // Bounded work: a SPIFFE element is well under 1 KiB; the tail is matched on the last 4 KiB only.
  const m = re.exec(xfcc.length > 4096 ? xfcc.slice(-4096) : xfcc);
  if (!m) return "x-forwarded-client-cert does not end with an element this pod's proxy wrote";
  return { namespace: m[2], serviceAccount: m[3] };
}

/** Whether `peer` is the inbound proxy's bind address (REDIRECT mode: the caller's address is not seen). */
export function isProxyPeer(peer: string): boolean {
  return PROXY_PEERS.has(peer);
}

export type CallerResult =
  | { ok: true; caller: Caller }
  | {
      ok: false;
      status: 401 | 429 | 503;
      reason: "unauthenticated" | "auth-unavailable" | "unexpected-source" | "rate-limited";
      detail: string;
    };

/**
 * Identify the caller of `req`: this pod's sidecar's element (see xfccPeer), else a bearer token
 * by TokenReview. `admitReview` is asked before a token the reviewer has not cached is sent to
 * the API server (0 = go, else seconds to wait).
 */
export async function identify(
  req: IncomingMessage,
  self: Identity,
  reviewer: AccessReviewer | null,
  admitReview: () => number = () => 0,
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
    const wait = reviewer.cached?.(m[1]) ? 0 : admitReview();
    if (wait > 0)
      return {
        ok: false,
        status: 429,
        reason: "rate-limited",
        detail: `too many new tokens to review from ${req.socket.remoteAddress}; retry in ${wait}s`,
      };
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
    const node = user.extra?.[NODE_NAME_EXTRA]?.[0];
    return {
      ok: true,
      caller: {
        namespace: sa?.[0] ?? "",
        serviceAccount: sa?.[1] ?? "",
        user,
        via: "token",
        ...(node ? { node } : {}),
      },
    };
  }
  const source = req.socket.remoteAddress ?? "";
  if (req.headers["x-forwarded-client-cert"] !== undefined && !PROXY_PEERS.has(source))
    // A sidecar's header from a source that is not its bind address: either the mesh runs this
    // pod with inboundTrafficPolicy LOCALHOST (127.0.0.1) or TPROXY (the caller's address), or a
    // client on an excluded port wrote it. Retryable: the filter keeps the data until it is fixed.
    return {
      ok: false,
      status: 503,
      reason: "unexpected-source",
      detail: `x-forwarded-client-cert on a connection from ${source}, not the sidecar's 127.0.0.6: ${unexpectedSourceHint(source)}`,
    };
  return {
    ok: false,
    status: 401,
    reason: "unauthenticated",
    detail: "no mesh identity (mTLS via this pod's sidecar) and no bearer token",
  };
}

/** The mesh setting that most likely explains a sidecar header from `source`. */
export function unexpectedSourceHint(source: string): string {
  return /^(::ffff:)?127\.0\.0\.1$|^::1$/.test(source)
    ? "is the mesh's inboundTrafficPolicy LOCALHOST? the controller needs PASSTHROUGH (the default) with REDIRECT interception"
    : "is this pod intercepted in TPROXY mode, or was the port excluded from interception? the controller pins sidecar.istio.io/interceptionMode: REDIRECT";
}

/** This pod's own mesh identity: --self, else the downward-API env (POD_NAMESPACE, SERVICE_ACCOUNT), else `dflt`. */
export function selfIdentity(self: string | undefined, dflt: string): Identity {
  const v =
    self ??
    (process.env.POD_NAMESPACE && process.env.SERVICE_ACCOUNT
      ? `${process.env.POD_NAMESPACE}/${process.env.SERVICE_ACCOUNT}`
      : dflt);
  const id = parseIdentity(v);
  if (!id) throw new UserError(`--self ${v}: expected NAMESPACE/SERVICEACCOUNT`, 2);
  return id;
}

// What of a caller's request the fallback passes on. The target is reduced to origin-form
// (RFC 9112 §3.2.1): an absolute-form target must name the Host it is routed by (else it would
// go upstream verbatim while Host decided the route), authority-form (CONNECT) is refused.
// Headers dropped: hop-by-hop ones (RFC 9110 §7.6.1, and any the Connection header names),
// Envoy's control headers (x-envoy-*: retries, original-dst host, internal, peer metadata;
// Envoy trusts them from an internal hop — envoy docs "HTTP header sanitizing"), forwarding and
// identity headers (Forwarded, X-Forwarded-*, XFCC, meshtune's own), and the loop marker.

/** Set on every request the fallback sends; a request arriving with it has looped. */
export const HOP_HEADER = "x-meshtune-fallback-hop";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "forwarded",
  "x-forwarded-client-cert",
  "http2-settings",
]);
const DROP_PREFIXES = ["x-envoy-", "x-forwarded-", "x-meshtune-", "x-istio-"];

export function dropHeader(name: string, connectionListed: ReadonlySet<string>): boolean {
  const n = name.toLowerCase();
  return HOP_BY_HOP.has(n) || connectionListed.has(n) || DROP_PREFIXES.some((p) => n.startsWith(p));
}

const NONE: ReadonlySet<string> = new Set();

/** The headers to send on, from Node's parsed request/response headers (lower-case names). */
export function forwardable(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const c = headers.connection;
  const listed = c
    ? new Set(
        String(c)
          .split(",")
          .map((s) => s.trim().toLowerCase())
          .filter(Boolean),
      )
    : NONE;
  const out: Record<string, string | string[]> = {};
  for (const k in headers) {
    const v = headers[k];
    if (v !== undefined && !dropHeader(k, listed)) out[k] = v;
  }
  return out;
}

/** The origin-form path to send, or why the target is refused. */
export function originForm(method: string, target: string, host: string): { path: string } | { error: string } {
  if (method === "CONNECT") return { error: "CONNECT (authority-form) is not forwarded" };
  if (target === "*") return method === "OPTIONS" ? { path: "*" } : { error: "asterisk-form only with OPTIONS" };
  if (target.startsWith("/")) return { path: target };
  let u: URL;
  try {
    u = new URL(target);
  } catch {
    return { error: `request-target ${JSON.stringify(target.slice(0, 80))} is neither origin- nor absolute-form` };
  }
  if (u.protocol !== "http:") return { error: `absolute-form scheme ${u.protocol} is not forwarded` };
  if (u.username || u.password) return { error: "userinfo in the request-target" };
  if (u.host.toLowerCase() !== host.trim().toLowerCase())
    return { error: `absolute-form target names ${u.host}, Host says ${host.slice(0, 80)}` };
  return { path: `${u.pathname}${u.search}` };
}

// `meshtune fallback`: where scoped sidecars send what their Sidecar does not list yet
// (outboundTrafficPolicy.egressProxy). One port, because egressProxy has one: Istio sends both
// the catch-all HTTP route and the catch-all TCP chain to that single cluster
// (httproute.go buildCatchAllVirtualHost; listener_builder.go buildOutboundCatchAllNetworkFiltersOnly).
// So the first bytes decide: a TLS ClientHello is passed through by its SNI (never terminated);
// anything else is parsed as HTTP/1.1 (Node's llhttp) and forwarded by its Host; bytes that are
// neither cannot be routed (the original destination address is gone) and are refused, counted.
// Requests leave through this pod's own sidecar (a plain connect to the service name), so mTLS,
// AuthorizationPolicies and VirtualService routing apply as they would have for the caller.
// Streams both ways, never buffers a body; bounded connections, sniff/idle/connect timeouts.
import {
  createServer as createNetServer,
  connect as netConnect,
  type Server as NetServer,
  type Socket,
} from "node:net";
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
  type Server as HttpServer,
} from "node:http";
import { Counter, type Registry } from "prom-client";
import { parseClientHelloSni, looksLikeTls } from "./sni.js";
import { resolveTarget, type Target } from "./resolve.js";
import { xfccPeer, isProxyPeer, type Identity } from "../collector/caller.js";
import type { HostIndex } from "../istio/hosts.js";

/** What is known of the caller: its mesh identity (XFCC) and/or its pod address (TPROXY keeps it). */
export interface CallerEvidence {
  namespace?: string;
  serviceAccount?: string;
  podIp?: string;
}
export interface Learned {
  caller: CallerEvidence;
  host: string;
  port: number;
  proto: "HTTP" | "TLS";
  registered: boolean;
}

export interface FallbackOptions {
  self: Identity;
  index: () => HostIndex;
  clusterDomain: string;
  /** Open a connection to host:port through this pod's sidecar (default: DNS + connect). */
  connect?: (host: string, port: number) => Socket;
  learn: (l: Learned) => void;
  /** False until the catalog synced: a Host resolved against an empty catalog could go astray. */
  ready?: () => boolean;
  maxConnections?: number;
  sniffTimeoutMs?: number;
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
}

export type FallbackReason =
  | "not-ready"
  | "sniff-timeout"
  | "unroutable-tcp"
  | "bad-tls"
  | "no-sni"
  | "bad-host"
  | "untrusted-caller"
  | "upstream-error"
  | "connections"
  | "idle-timeout";

// Hop-by-hop headers (RFC 9110 §7.6.1) and headers that claim an identity: never forwarded.
const DROP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "x-forwarded-client-cert",
  "x-meshtune-caller",
  "x-meshtune-forwarded-by",
]);

export class FallbackServer {
  readonly requests: Counter<"proto" | "outcome">;
  readonly refused: Counter<"reason">;
  private readonly net: NetServer;
  private readonly http: HttpServer;
  private readonly o: Required<Omit<FallbackOptions, "connect" | "ready">> & Pick<FallbackOptions, "connect" | "ready">;

  constructor(opts: FallbackOptions, registry: Registry) {
    this.o = { maxConnections: 4096, sniffTimeoutMs: 10_000, idleTimeoutMs: 300_000, connectTimeoutMs: 5_000, ...opts };
    this.requests = new Counter({
      name: "meshtune_fallback_requests_total",
      help: "Requests (HTTP) and connections (TLS) the fallback forwarded, by outcome",
      labelNames: ["proto", "outcome"],
      registers: [registry],
    });
    this.refused = new Counter({
      name: "meshtune_fallback_refused_total",
      help: "Connections or requests the fallback could not route, by reason",
      labelNames: ["reason"],
      registers: [registry],
    });
    this.http = createHttpServer(
      { requestTimeout: 0, headersTimeout: this.o.sniffTimeoutMs, keepAliveTimeout: 5_000 },
      (req, res) => this.forwardHttp(req, res),
    );
    this.net = createNetServer({ pauseOnConnect: false }, (s) => this.sniff(s));
    this.net.maxConnections = this.o.maxConnections;
    this.net.on("drop", () => this.refused.inc({ reason: "connections" }));
  }

  listen(port: number, host = "0.0.0.0"): Promise<number> {
    return new Promise((resolve, reject) => {
      this.net.once("error", reject);
      this.net.listen(port, host, () => resolve((this.net.address() as { port: number }).port));
    });
  }

  close(): Promise<void> {
    this.http.closeAllConnections();
    return new Promise((r) => this.net.close(() => r()));
  }

  private connect(host: string, port: number): Socket {
    return this.o.connect ? this.o.connect(host, port) : netConnect({ host, port });
  }

  /** Read just enough to tell TLS from HTTP; hand the socket on with those bytes put back. */
  private sniff(s: Socket): void {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      this.refused.inc({ reason: "sniff-timeout" });
      s.destroy();
    }, this.o.sniffTimeoutMs);
    s.on("error", () => {});
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!looksLikeTls(buf[0])) {
        // HTTP methods are tokens (RFC 9110 §9.1): a request line starts with an uppercase letter.
        done();
        if (buf[0] < 0x41 || buf[0] > 0x5a) {
          this.refused.inc({ reason: "unroutable-tcp" });
          s.destroy();
          return;
        }
        s.unshift(buf);
        this.http.emit("connection", s);
        s.resume();
        return;
      }
      const r = parseClientHelloSni(buf);
      if (r.kind === "need-more") return; // the parser refuses anything past MAX_HELLO
      done();
      if (r.kind !== "sni") {
        this.refused.inc({ reason: r.kind === "no-sni" ? "no-sni" : "bad-tls" });
        s.destroy();
        return;
      }
      this.passTls(s, r.name, buf);
    };
    const done = () => {
      clearTimeout(timer);
      s.removeListener("data", onData);
      s.pause();
    };
    s.on("data", onData);
  }

  /** The caller as far as this connection shows it: the sidecar's XFCC (HTTP), the source address (TPROXY). */
  private caller(s: Socket, xfcc: string | string[] | undefined): CallerEvidence | string {
    const peer = (s.remoteAddress ?? "").replace(/^::ffff:/, "");
    // In a pod only the proxy reaches the app over loopback: from 127.0.0.6 (inbound bind) or
    // 127.0.0.1/::1 (in-pod callers). Any other source is the caller's own address.
    const loopback = peer === "127.0.0.1" || peer === "::1";
    const ev: CallerEvidence = {};
    // Under TPROXY interception the inbound listener keeps the caller's address (listener_inbound.go
    // populateListenerFilters adds original_src); under REDIRECT it is the bind address 127.0.0.6.
    if (!isProxyPeer(peer) && !loopback && peer) ev.podIp = peer;
    // The proxy's element is trusted from the proxy's bind address, or from a non-loopback
    // source under TPROXY (only the sidecar reaches this port from outside the pod).
    if (xfcc !== undefined && (isProxyPeer(peer) || ev.podIp)) {
      const id = xfccPeer(xfcc, this.o.self);
      if (typeof id === "string") return id;
      if (id) {
        ev.namespace = id.namespace;
        ev.serviceAccount = id.serviceAccount;
      }
    }
    return ev;
  }

  private forwardHttp(req: IncomingMessage, res: ServerResponse): void {
    const fail = (status: number, reason: FallbackReason, detail: string) => {
      this.refused.inc({ reason });
      if (!res.headersSent)
        res
          .writeHead(status, { "content-type": "text/plain", "x-meshtune-fallback": reason })
          .end(`meshtune fallback: ${detail}\n`);
      else res.destroy();
    };
    if (this.o.ready && !this.o.ready()) return fail(503, "not-ready", "service catalog not synced yet; retry");
    const caller = this.caller(req.socket, req.headers["x-forwarded-client-cert"]);
    if (typeof caller === "string") return fail(403, "untrusted-caller", caller);
    const t = resolveTarget(
      req.headers.host ?? "",
      caller.namespace ?? null,
      "HTTP",
      this.o.index(),
      this.o.clusterDomain,
    );
    if (typeof t === "string") return fail(400, "bad-host", t);
    this.o.learn({ caller, host: t.host, port: t.port, proto: "HTTP", registered: t.registered });
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !DROP.has(k)) headers[k] = v;
    // The fallback's sidecar routes by Host among *its* virtual hosts: short names only match in
    // its own namespace (httproute.go generateAltVirtualHostsForKubernetesService), so send the FQDN.
    headers.host = t.port === 80 ? t.host : `${t.host}:${t.port}`;
    const up = httpRequest({ method: req.method, path: req.url, headers, createConnection: () => this.dial(t) });
    up.setTimeout(this.o.idleTimeoutMs, () => up.destroy(new Error("idle timeout")));
    up.on("response", (r) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !DROP.has(k)) out[k] = v;
      res.writeHead(r.statusCode ?? 502, out);
      r.pipe(res);
      r.on("end", () => this.requests.inc({ proto: "HTTP", outcome: "forwarded" }));
      r.on("error", () => res.destroy());
    });
    up.on("error", (e) => {
      this.requests.inc({ proto: "HTTP", outcome: "upstream-error" });
      fail(502, "upstream-error", `${t.host}:${t.port}: ${e.message}`);
    });
    req.pipe(up);
    res.on("close", () => {
      if (!res.writableFinished) up.destroy();
    });
  }

  /** A connection to the target with a connect deadline (Node's http has none of its own). */
  private dial(t: Target): Socket {
    const s = this.connect(t.host, t.port);
    const timer = setTimeout(
      () => s.destroy(new Error(`connect timeout after ${this.o.connectTimeoutMs} ms`)),
      this.o.connectTimeoutMs,
    );
    s.once("connect", () => clearTimeout(timer));
    s.once("close", () => clearTimeout(timer));
    return s;
  }

  private passTls(s: Socket, sni: string, hello: Buffer): void {
    if (this.o.ready && !this.o.ready()) {
      this.refused.inc({ reason: "not-ready" });
      s.destroy();
      return;
    }
    const caller = this.caller(s, undefined);
    const ev = typeof caller === "string" ? {} : caller;
    const t = resolveTarget(sni, ev.namespace ?? null, "TLS", this.o.index(), this.o.clusterDomain);
    if (typeof t === "string") {
      this.refused.inc({ reason: "bad-host" });
      s.destroy();
      return;
    }
    // Without a pod address (REDIRECT mode) the caller is unknown: route, but nothing to teach.
    if (ev.podIp) this.o.learn({ caller: ev, host: t.host, port: t.port, proto: "TLS", registered: t.registered });
    const up = this.dial(t);
    up.write(hello);
    const idle = () => {
      this.refused.inc({ reason: "idle-timeout" });
      s.destroy();
      up.destroy();
    };
    s.setTimeout(this.o.idleTimeoutMs, idle);
    up.on("connect", () => this.requests.inc({ proto: "TLS", outcome: "forwarded" }));
    up.on("error", () => {
      this.requests.inc({ proto: "TLS", outcome: "upstream-error" });
      s.destroy();
    });
    s.on("error", () => up.destroy());
    s.on("close", () => up.destroy());
    up.on("close", () => s.destroy());
    s.pipe(up);
    up.pipe(s);
    s.resume();
  }
}

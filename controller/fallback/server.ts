// `meshtune fallback`: where scoped sidecars send what their Sidecar does not list yet
// (outboundTrafficPolicy.egressProxy). One port, because egressProxy has one: Istio sends both
// the catch-all HTTP route and the catch-all TCP chain to that single cluster
// (httproute.go buildCatchAllVirtualHost; listener_builder.go buildOutboundCatchAllNetworkFiltersOnly).
// So the first bytes decide: a TLS ClientHello is passed through by its SNI (never terminated);
// the HTTP/2 connection preface (h2c with prior knowledge, gRPC) goes to an HTTP/2 forwarder
// (fallback/h2.ts); anything else that starts like a request line is parsed as HTTP/1.1 (Node's
// llhttp) and forwarded by its Host; bytes that are none of these cannot be routed (the
// original destination address is gone) and are refused, counted.
// Every request is for a verified caller (fallback/caller.ts), to a destination fallback/route.ts
// accepts; what was forwarded is learned for the caller only once the upstream answered.
// Requests leave through this pod's own sidecar (a plain connect to the service name).
// Streams both ways, never buffers a body. Bounded: connections in total and per source, and
// every connection, however it was accepted, has its own header, idle and lifetime deadlines
// (Node enforces its server timeouts only for servers it listens with; these are handed in).
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
import type { Counter, Registry } from "prom-client";
import { fallbackMetrics } from "../metrics.js";
import { parseClientHelloSni, looksLikeTls } from "./sni.js";
import { route, type Route, type RouteContext, type VerifiedCaller } from "./route.js";
import { verifyCaller, type PodOfAddress } from "./caller.js";
import { forwardable, originForm, HOP_HEADER } from "./headers.js";
import { H2Forwarder, H2_PREFACE } from "./h2.js";
import { UpstreamPool } from "./upstream-pool.js";
import { DecisionCache } from "./decision-cache.js";
import { limitPerSource } from "../collector/limits.js";

export interface Learned {
  caller: VerifiedCaller;
  host: string;
  port: number;
  proto: "HTTP" | "TLS";
  registered: boolean;
}

export interface FallbackOptions {
  /** The registry, policies and limits routes are decided by (read per request: it follows the informers). */
  context: () => RouteContext;
  podOf: PodOfAddress;
  /** Open a connection to host:port through this pod's sidecar (default: connect). */
  connect?: (host: string, port: number) => Socket;
  learn: (l: Learned) => void;
  /** False until the catalog synced: a Host resolved against an empty catalog could go astray. */
  ready?: () => boolean;
  maxConnections?: number;
  maxConnectionsPerSource?: number;
  sniffTimeoutMs?: number;
  headersTimeoutMs?: number;
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  maxConnectionMs?: number;
  /** How long a route decision is reused for one caller identity and authority (decision-cache.ts). */
  decisionTtlMs?: number;
}

/** Unanswered requests one HTTP/1.1 connection may have in flight (browsers pipeline none; curl 0). */
const MAX_PIPELINED = 16;

/** The longest authority a registry or DNS name can make: 253 bytes of name, ":", 5 digits. */
const MAX_AUTHORITY = 253 + 6;

export type Decision =
  | { ok: true; caller: VerifiedCaller; host: string; port: number; dial: string; registered: boolean }
  | { ok: false; status: number; reason: FallbackReason; detail: string; retryAfter?: number };

export type FallbackReason =
  | "not-ready"
  | "sniff-timeout"
  | "headers-timeout"
  | "lifetime"
  | "unroutable-tcp"
  | "bad-tls"
  | "no-sni"
  | "bad-host"
  | "bad-target"
  | "address-host"
  | "meshtune-endpoint"
  | "not-exported"
  | "policy"
  | "refused-address"
  | "dns"
  | "loop"
  | "unverified-caller"
  | "upstream-error"
  | "connections"
  | "pipelining"
  | "idle-timeout";

type Required2 = Required<Omit<FallbackOptions, "connect" | "ready">> & Pick<FallbackOptions, "connect" | "ready">;

export class FallbackServer {
  readonly requests: Counter<"proto" | "outcome">;
  /** The per-request counter's child, resolved once (labels hashed per inc cost a few µs). */
  /** requests{proto="HTTP",outcome="forwarded"}, resolved once: it counts every answer (h2.ts too). */
  readonly forwardedHttp: { inc: () => void };
  readonly refused: Counter<"reason">;
  private readonly net: NetServer;
  private readonly http: HttpServer;
  private readonly h2: H2Forwarder;
  /** Kept-alive upstream connections for HTTP/1.1 forwarding (bounded: upstream-pool.ts). */
  private readonly pool = new UpstreamPool((host, port) => this.dialer(host, port));
  /** Route decisions per caller identity and authority, dropped when the context changes (decision-cache.ts). */
  private readonly decisions: DecisionCache;
  readonly o: Required2;

  constructor(opts: FallbackOptions, registry: Registry) {
    this.o = {
      maxConnections: 4096,
      maxConnectionsPerSource: 256,
      sniffTimeoutMs: 10_000,
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 300_000,
      connectTimeoutMs: 5_000,
      maxConnectionMs: 3_600_000,
      decisionTtlMs: 5_000,
      ...opts,
    };
    this.decisions = new DecisionCache(10_000, this.o.decisionTtlMs);
    ({ requests: this.requests, refused: this.refused } = fallbackMetrics(registry));
    this.forwardedHttp = this.requests.labels({ proto: "HTTP", outcome: "forwarded" });
    this.http = createHttpServer({ requestTimeout: 0, headersTimeout: 0, keepAliveTimeout: 0 }, (req, res) =>
      this.onRequest(req, res),
    );
    this.h2 = new H2Forwarder(this);
    this.net = createNetServer({ pauseOnConnect: false }, (s) => this.accept(s));
    this.net.maxConnections = this.o.maxConnections;
    this.net.on("drop", () => this.refused.inc({ reason: "connections" }));
    limitPerSource(this.net, this.o.maxConnectionsPerSource, () => this.refused.inc({ reason: "connections" }));
  }

  listen(port: number, host = "0.0.0.0"): Promise<number> {
    return new Promise((resolve, reject) => {
      this.net.once("error", reject);
      this.net.listen(port, host, () => resolve((this.net.address() as { port: number }).port));
    });
  }

  close(): Promise<void> {
    this.pool.close();
    this.http.closeAllConnections();
    this.h2.close();
    return new Promise((r) => this.net.close(() => r()));
  }

  refuse(reason: FallbackReason): void {
    this.refused.inc({ reason });
  }

  dialer(host: string, port: number): Socket {
    const s = this.o.connect ? this.o.connect(host, port) : netConnect({ host, port });
    const timer = setTimeout(
      () => s.destroy(new Error(`connect timeout after ${this.o.connectTimeoutMs} ms`)),
      this.o.connectTimeoutMs,
    );
    s.once("connect", () => clearTimeout(timer));
    s.once("close", () => clearTimeout(timer));
    return s;
  }

  /** Every accepted connection: an idle deadline and a lifetime, whatever protocol it turns out to be. */
  private accept(s: Socket): void {
    s.on("error", () => {});
    s.setTimeout(this.o.idleTimeoutMs, () => {
      this.refuse("idle-timeout");
      s.destroy();
    });
    const life = setTimeout(() => {
      this.refuse("lifetime");
      s.destroy();
    }, this.o.maxConnectionMs);
    life.unref();
    s.once("close", () => clearTimeout(life));
    this.sniff(s);
  }

  /** Read just enough to tell TLS, HTTP/2 and HTTP/1 apart; hand the socket on with those bytes put back. */
  private sniff(s: Socket): void {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      this.refuse("sniff-timeout");
      s.destroy();
    }, this.o.sniffTimeoutMs);
    const done = () => {
      clearTimeout(timer);
      s.removeListener("data", onData);
      s.pause();
    };
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (looksLikeTls(buf[0])) {
        const r = parseClientHelloSni(buf);
        if (r.kind === "need-more") return; // the parser refuses anything past MAX_HELLO
        done();
        if (r.kind !== "sni") {
          this.refuse(r.kind === "no-sni" ? "no-sni" : "bad-tls");
          s.destroy();
          return;
        }
        void this.passTls(s, r.name, buf);
        return;
      }
      // HTTP/2 prior knowledge: the 24-byte preface (RFC 9113 §3.4); wait until it can be told apart.
      const n = Math.min(buf.length, H2_PREFACE.length);
      if (buf.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) {
        if (buf.length < H2_PREFACE.length) return;
        done();
        this.h2.accept(s, buf);
        return;
      }
      done();
      // HTTP methods are tokens (RFC 9110 §9.1): a request line starts with an uppercase letter.
      if (buf[0] < 0x41 || buf[0] > 0x5a) {
        this.refuse("unroutable-tcp");
        s.destroy();
        return;
      }
      s.unshift(buf);
      this.headersDeadline(s);
      this.http.emit("connection", s);
      s.resume();
    };
    s.on("data", onData);
  }

  /**
   * Each HTTP/1 request's headers must be complete within headersTimeoutMs of its first chance:
   * the connection's first bytes, or the moment it has no request in flight again (keep-alive).
   * One timer per connection, re-armed with refresh() (a timer and a close listener per request
   * would pile up on a long keep-alive connection); it does not fire while any request is being
   * answered, pipelined ones included (a cleared timer cannot be re-armed, so it checks instead).
   */
  private readonly deadlines = new WeakMap<Socket, { timer: NodeJS.Timeout; inflight: number }>();
  private headersDeadline(s: Socket): void {
    const d = {
      inflight: 0,
      timer: setTimeout(() => {
        if (d.inflight > 0) return;
        this.refuse("headers-timeout");
        if (s.writable) s.end("HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
        s.destroySoon();
      }, this.o.headersTimeoutMs),
    };
    this.deadlines.set(s, d);
    s.once("close", () => clearTimeout(d.timer));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const s = req.socket;
    // A connection closed for pipelining still hands over the rest of the chunk already parsed:
    // nothing of it is forwarded, and the refusal was counted once, for the connection.
    if (s.destroyed) return;
    const d = this.deadlines.get(s);
    if (d) {
      // Node's parser turns every pipelined request of a chunk into a request at once, and each
      // would be forwarded: one write of 200k pipelined GETs took the fallback to 1 GB. A
      // connection with more than MAX_PIPELINED unanswered requests is closed, counted.
      if (d.inflight >= MAX_PIPELINED) {
        this.refuse("pipelining");
        s.destroy();
        return;
      }
      d.inflight++;
      let done = false;
      const answered = () => {
        if (done) return;
        done = true;
        // The next request's headers are due within the deadline once nothing is in flight.
        if (--d.inflight === 0 && !s.destroyed) d.timer.refresh();
      };
      res.once("finish", answered);
      res.once("close", answered);
    }
    try {
      this.forwardHttp(req, res);
    } catch (e) {
      this.fail(res, 502, "upstream-error", (e as Error).message);
    }
  }

  private fail(res: ServerResponse, status: number, reason: FallbackReason, detail: string, retryAfter?: number): void {
    this.refuse(reason);
    if (res.headersSent) return void res.destroy();
    const h: Record<string, string> = { "content-type": "text/plain", "x-meshtune-fallback": reason };
    if (retryAfter) h["retry-after"] = String(retryAfter);
    res.writeHead(status, h).end(`meshtune fallback: ${detail.split("\n")[0]}\n`);
  }

  /**
   * The caller, routed destination and headers for one request (HTTP/1 and HTTP/2 alike), or a
   * refusal. Synchronous when the route decision is cached (the common case: no promise, no
   * microtask per request); a promise when route() has to run.
   */
  decide(
    remote: string | undefined,
    authority: string,
    hopHeader: unknown,
    proto: "HTTP" | "TLS",
  ): Decision | Promise<Decision> {
    if (this.o.ready && !this.o.ready())
      return {
        ok: false,
        status: 503,
        reason: "not-ready",
        detail: "service catalog not synced yet; retry",
        retryAfter: 1,
      };
    if (hopHeader !== undefined)
      return { ok: false, status: 508, reason: "loop", detail: "request already passed through the fallback" };
    const caller = verifyCaller(remote, this.o.podOf);
    if (typeof caller === "string") return { ok: false, status: 403, reason: "unverified-caller", detail: caller };
    // No host name is longer (RFC 1035: 253, plus ":65535"): refused before anything is
    // decided or cached, so a caller cannot fill the cache with 16 KB Host headers.
    if (authority.length > MAX_AUTHORITY)
      return { ok: false, status: 400, reason: "bad-host", detail: `authority of ${authority.length} bytes` };
    const ctx = this.o.context();
    const cached = this.decisions.get(ctx, authority, proto, caller);
    if (cached) return this.decided(cached, caller, proto);
    return route(authority, caller, proto, ctx).then((r) => {
      this.decisions.set(ctx, authority, proto, caller, r);
      return this.decided(r, caller, proto);
    });
  }

  private decided(r: Route, caller: VerifiedCaller, proto: "HTTP" | "TLS"): Decision {
    if (!r.ok) {
      if (r.learn) this.o.learn({ caller, proto, ...r.learn });
      return {
        ok: false,
        status: r.status,
        reason: r.reason,
        detail: r.detail,
        retryAfter: r.status === 503 ? 5 : undefined,
      };
    }
    return { ok: true, caller, host: r.host, port: r.port, dial: r.dial, registered: r.registered };
  }

  private forwardHttp(req: IncomingMessage, res: ServerResponse): void {
    const host = req.headers.host ?? "";
    const target = originForm(req.method ?? "GET", req.url ?? "/", host);
    if ("error" in target) return this.fail(res, 400, "bad-target", target.error);
    const d = this.decide(req.socket.remoteAddress, host, req.headers[HOP_HEADER], "HTTP");
    if (d instanceof Promise)
      d.then((x) => this.sendHttp(req, res, target.path, x)).catch((e) =>
        this.fail(res, 502, "upstream-error", (e as Error).message),
      );
    else this.sendHttp(req, res, target.path, d);
  }

  private sendHttp(req: IncomingMessage, res: ServerResponse, path: string, d: Decision): void {
    if (!d.ok) return this.fail(res, d.status, d.reason, d.detail, d.retryAfter);
    const headers = forwardable(req.headers);
    // The fallback's sidecar routes by Host among *its* virtual hosts: short names only match in
    // its own namespace (httproute.go generateAltVirtualHostsForKubernetesService), so send the FQDN.
    headers.host = d.port === 80 ? d.host : `${d.host}:${d.port}`;
    headers[HOP_HEADER] = "1";
    const up = httpRequest({
      method: req.method,
      path,
      headers,
      agent: this.pool.agent(d.dial, d.port),
    });
    up.setTimeout(this.o.idleTimeoutMs, () => up.destroy(new Error("idle timeout")));
    up.on("response", (r) => {
      // Learned only now: the upstream answered, so the host is real and reachable for the caller.
      this.o.learn({ caller: d.caller, host: d.host, port: d.port, proto: "HTTP", registered: d.registered });
      res.writeHead(r.statusCode ?? 502, forwardable(r.headers));
      r.pipe(res);
      r.on("end", () => this.forwardedHttp.inc());
      r.on("error", () => res.destroy());
    });
    up.on("error", (e) => {
      this.requests.inc({ proto: "HTTP", outcome: "upstream-error" });
      this.fail(res, 502, "upstream-error", `${d.host}:${d.port}: ${e.message}`);
    });
    req.pipe(up);
    res.on("close", () => {
      if (!res.writableFinished) up.destroy();
    });
  }

  private async passTls(s: Socket, sni: string, hello: Buffer): Promise<void> {
    const d = await this.decide(s.remoteAddress, sni, undefined, "TLS");
    if (!d.ok) {
      this.refuse(d.reason);
      s.destroy();
      return;
    }
    const up = this.dialer(d.dial, d.port);
    up.write(hello);
    up.on("connect", () => {
      this.o.learn({ caller: d.caller, host: d.host, port: d.port, proto: "TLS", registered: d.registered });
      this.requests.inc({ proto: "TLS", outcome: "forwarded" });
    });
    up.on("error", () => {
      this.requests.inc({ proto: "TLS", outcome: "upstream-error" });
      s.destroy();
    });
    s.on("close", () => up.destroy());
    up.on("close", () => s.destroy());
    s.pipe(up);
    up.pipe(s);
    s.resume();
  }
}

// HTTP/2 with prior knowledge (h2c, what gRPC clients speak in a mesh: the sidecar keeps the
// client's protocol on the catch-all route). Each stream is decided like an HTTP/1 request
// (FallbackServer.decide, by :authority) and forwarded on an upstream HTTP/2 session to the
// routed destination; responses stream back with their trailers (gRPC's status lives there).
// Upstream sessions are kept per destination and closed when idle, at most MAX_SESSIONS.
import {
  connect as h2connect,
  createServer,
  constants,
  type ClientHttp2Session,
  type Http2Server,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import { forwardable, HOP_HEADER } from "./headers.js";
import type { FallbackServer } from "./server.js";

/** The client connection preface, RFC 9113 §3.4. */
export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const MAX_SESSIONS = 256;
const { HTTP2_HEADER_AUTHORITY, HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_SCHEME, HTTP2_HEADER_STATUS } =
  constants;

/** A duplex over `s` that first yields `head` (bytes already read from it). */
function prepend(s: Socket, head: Buffer): Duplex {
  const d = new Duplex({
    read: () => void s.resume(),
    write: (chunk, enc, cb) => void s.write(chunk, enc, cb),
    final: (cb) => {
      s.end();
      cb();
    },
    destroy: (err, cb) => {
      s.destroy(err ?? undefined);
      cb(err);
    },
  });
  d.push(head);
  s.on("data", (c) => {
    if (!d.push(c)) s.pause();
  });
  s.on("end", () => d.push(null));
  s.on("close", () => d.destroy());
  return d;
}

/** Regular headers of an HTTP/2 header block with the fallback's drops applied (pseudo-headers set by the caller). */
function regular(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const plain: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(h)) if (!k.startsWith(":")) plain[k] = v;
  return forwardable(plain);
}

export class H2Forwarder {
  private readonly server: Http2Server;
  private readonly sessions = new Map<string, ClientHttp2Session>();
  private readonly remotes = new WeakMap<object, string | undefined>();

  constructor(private readonly fb: FallbackServer) {
    // Node's default allows 2^32-1 concurrent streams per session: cap them like Envoy's default (100).
    this.server = createServer({ maxSessionMemory: 16, settings: { maxConcurrentStreams: 100 } });
    this.server.on("stream", (stream, headers) => {
      this.forward(stream, headers).catch((e) => this.fail(stream, 502, "upstream-error", (e as Error).message));
    });
    this.server.on("sessionError", () => {});
  }

  /**
   * Hand a sniffed connection over. HTTP/2 sessions read the socket's handle directly, so bytes
   * put back with unshift() would be lost (Node: "Received bad client magic byte string"); the
   * session gets a stream that yields the sniffed bytes first, then the socket's.
   */
  accept(s: Socket, head: Buffer): void {
    const remote = s.remoteAddress;
    this.server.once("session", (session) => this.remotes.set(session, remote));
    this.server.emit("connection", prepend(s, head));
  }

  close(): void {
    for (const c of this.sessions.values()) c.destroy();
    this.sessions.clear();
  }

  private fail(
    stream: ServerHttp2Stream,
    status: number,
    reason: Parameters<FallbackServer["refuse"]>[0],
    detail: string,
    retryAfter?: number,
  ): void {
    this.fb.refuse(reason);
    if (stream.destroyed || stream.headersSent) return void stream.close(constants.NGHTTP2_CANCEL);
    const h: OutgoingHttpHeaders = {
      [HTTP2_HEADER_STATUS]: status,
      "content-type": "text/plain",
      "x-meshtune-fallback": reason,
    };
    if (retryAfter) h["retry-after"] = String(retryAfter);
    stream.respond(h);
    stream.end(`meshtune fallback: ${detail.split("\n")[0]}\n`);
  }

  private session(dial: string, port: number): ClientHttp2Session {
    const key = `${dial}:${port}`;
    const have = this.sessions.get(key);
    if (have && !have.closed && !have.destroyed) return have;
    if (this.sessions.size >= MAX_SESSIONS) {
      const [oldKey, old] = this.sessions.entries().next().value as [string, ClientHttp2Session];
      old.close();
      this.sessions.delete(oldKey);
    }
    const c = h2connect(`http://${key}`, { createConnection: () => this.fb.dialer(dial, port) });
    c.on("error", () => {});
    c.setTimeout(this.fb.o.idleTimeoutMs, () => c.close());
    c.on("close", () => {
      if (this.sessions.get(key) === c) this.sessions.delete(key);
    });
    this.sessions.set(key, c);
    return c;
  }

  private async forward(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    const authority = String(headers[HTTP2_HEADER_AUTHORITY] ?? headers.host ?? "");
    const method = String(headers[HTTP2_HEADER_METHOD] ?? "GET");
    const path = String(headers[HTTP2_HEADER_PATH] ?? "/");
    if (method === "CONNECT" || !path.startsWith("/"))
      return this.fail(stream, 400, "bad-target", `${method} ${path} is not forwarded`);
    stream.on("error", () => {});
    const d = await this.fb.decide(
      stream.session ? this.remotes.get(stream.session) : undefined,
      authority,
      headers[HOP_HEADER],
      "HTTP",
    );
    if (!d.ok) return this.fail(stream, d.status, d.reason, d.detail, d.retryAfter);
    const out: OutgoingHttpHeaders = {
      ...regular(headers),
      [HTTP2_HEADER_METHOD]: method,
      [HTTP2_HEADER_PATH]: path,
      [HTTP2_HEADER_SCHEME]: "http",
      [HTTP2_HEADER_AUTHORITY]: d.port === 80 ? d.host : `${d.host}:${d.port}`,
      [HOP_HEADER]: "1",
    };
    const up = this.session(d.dial, d.port).request(out);
    up.on("error", (e) => {
      this.fb.requests.inc({ proto: "HTTP", outcome: "upstream-error" });
      this.fail(stream, 502, "upstream-error", `${d.host}:${d.port}: ${e.message}`);
    });
    let trailers: OutgoingHttpHeaders | null = null;
    up.on("trailers", (t) => (trailers = regular(t)));
    up.on("response", (h) => {
      this.fb.o.learn({ caller: d.caller, host: d.host, port: d.port, proto: "HTTP", registered: d.registered });
      stream.respond(
        { ...regular(h), [HTTP2_HEADER_STATUS]: h[HTTP2_HEADER_STATUS] ?? 502 },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () => stream.sendTrailers(trailers ?? {}));
      up.pipe(stream);
      up.on("end", () => this.fb.forwardedHttp.inc());
    });
    stream.pipe(up);
    stream.on("close", () => {
      if (!up.closed) up.close(constants.NGHTTP2_CANCEL);
    });
  }
}

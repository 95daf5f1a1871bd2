// Collector: POST /v1/reports from the filters, merged into the shared graph.
// Order of checks, cheapest first and before any body is buffered: method, content type, size,
// caller identity (collector/caller.ts), per-identity rate, in-flight byte budget; then JSON,
// schema, content (collector/report-content.ts) and the caller's right to speak for the
// report's workload. 202 only when the whole report is in the graph; a report a cap cut short
// is answered 507 with the counts (the filter does not resend it); everything refused is
// counted by reason in meshtune_reports_rejected_total.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Counter, Registry } from "prom-client";
import { collectorMetrics } from "../metrics.js";
import type { Graph } from "../model/graph.js";
import type { HostIndex } from "../istio/hosts.js";
import { NODE_NAME_EXTRA, type AccessReviewer } from "../k8s/access-review.js";
import type { Logger } from "../log.js";
import { MAX_REPORT_BYTES, validateReport, type ReportV1 } from "./report-schema.js";
import { reportContentError } from "./report-content.js";
import { mergeReport } from "./merge-report.js";
import type { DiagnoseStore } from "../diagnose/store.js";
import { identify, parseIdentity, type Caller, type Identity } from "./caller.js";
import { validateFallbackReport, type FallbackReport } from "./fallback-report.js";
import { validateAgentReport, type AgentReport } from "./agent-report.js";
import {
  applyServerLimits,
  DEFAULT_SERVER_LIMITS,
  InflightBudget,
  RateLimiter,
  ReviewGate,
  serverOptions,
  type ServerLimits,
} from "./limits.js";

/** Header a standby adds when it forwards a report: the receiver never forwards it again. */
export const FORWARDED = "x-meshtune-forwarded-by";
/** The original caller ("ns/sa") of a forwarded report; trusted only from another replica. */
export const FORWARDED_CALLER = "x-meshtune-caller";
/** The original caller's node claim (agents), forwarded beside FORWARDED_CALLER. */
export const FORWARDED_NODE = "x-meshtune-caller-node";
const NODE_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

export type RejectReason =
  | "method"
  | "content-type"
  | "oversize"
  | "malformed-json"
  | "version"
  | "schema"
  | "no-leader"
  | "unauthenticated"
  | "auth-unavailable"
  | "unexpected-source"
  | "forbidden"
  | "identity-mismatch"
  | "unknown-workload"
  | "not-ready"
  | "rate-limited"
  | "busy"
  | "invalid-cluster"
  | "invalid-host"
  | "invalid-authority"
  | "invalid-address"
  | "unreachable-host"
  | "graph-full"
  | "timeout"
  | "connections"
  | "bad-request";

/** Why a caller may not report for a workload, or null when it may. */
export type Binder = (
  caller: Caller,
  namespace: string,
  workload: string,
  pod?: string,
) => { status: 403 | 503; reason: "identity-mismatch" | "unknown-workload" | "not-ready"; detail: string } | null;

/** Where a valid report goes when this replica does not merge it itself (a standby forwards to the leader). */
export type Relay = (
  body: string,
  caller: Caller | null,
  forwarded: boolean,
) => Promise<{ status: number; text: string } | null>;

export interface CollectorOptions {
  /** This controller's identity and the token reviewer; null = --insecure-collector (no identity checks). */
  auth: { self: Identity; reviewer: AccessReviewer | null } | null;
  bind?: Binder;
  /** The live catalog, for exportTo checks of reported hosts. */
  index?: () => HostIndex | null;
  clusterDomain?: string;
  limits?: Partial<ServerLimits>;
  maxBytes?: number;
  now?: () => number;
  /** The fallback's identity: the only caller whose `kind: "fallback"` reports are accepted. */
  fallbackIdentity?: Identity;
  /** Merges a fallback report (the controller resolves each caller through its pod informer). */
  mergeFallback?: (r: FallbackReport) => Fail | null;
  /** The node agents' identity: the only caller whose `kind: "agent"` reports are accepted. */
  agentIdentity?: Identity;
  /** Where the collector says why it refuses whole classes of reports (a mesh misconfiguration). */
  log?: Logger;
  /** Merges a node agent's L4 edges (the controller resolves each pod through its informer). */
  mergeAgent?: (r: AgentReport) => Fail | null;
}

export type Fail = [number, RejectReason, string];
type Checked =
  | { ok: true; report: ReportV1; fallback?: undefined; agent?: undefined }
  | { ok: true; fallback: FallbackReport; report?: undefined; agent?: undefined }
  | { ok: true; agent: AgentReport; report?: undefined; fallback?: undefined }
  | { ok: false; err: Fail };

export class Collector {
  readonly received: Counter;
  readonly rejected: Counter<"reason">;
  readonly forwarded: Counter;
  readonly edgesDropped: Counter<"reason">;
  /** Called with each merged report's workload (the controller queues it for reconcile). */
  onMerged: (namespace: string, workload: string) => void = () => {};
  /** Windowed timings for diagnose (both ends' histograms), when the controller keeps them. */
  diagnose: DiagnoseStore | null = null;
  /** Set on HA replicas: returns the answer to send instead of merging locally, or null to merge here. */
  relay: Relay | null = null;
  readonly limits: ServerLimits;
  readonly maxBytes: number;
  private readonly rate: RateLimiter;
  readonly inflight: InflightBudget;
  private readonly reviews: ReviewGate;
  /** The last report refused for arriving from a source the sidecar does not use (readiness detail), or null. */
  unexpectedSource: string | null = null;
  private unexpectedLoggedAt = 0;

  constructor(
    readonly graph: Graph,
    readonly registry: Registry = new Registry(),
    readonly o: CollectorOptions = { auth: null },
  ) {
    this.limits = { ...DEFAULT_SERVER_LIMITS, ...o.limits };
    this.maxBytes = o.maxBytes ?? MAX_REPORT_BYTES;
    this.rate = new RateLimiter(this.limits.ratePerSecond, this.limits.burst, 50_000, o.now);
    this.inflight = new InflightBudget(this.limits.maxInflightBytes, this.limits.maxInflightPerIdentity);
    this.reviews = new ReviewGate(this.limits.reviewsPerSecondPerSource, this.limits.reviewsPerSecond, o.now);
    ({
      forwarded: this.forwarded,
      received: this.received,
      rejected: this.rejected,
      edgesDropped: this.edgesDropped,
    } = collectorMetrics(registry));
  }

  private now() {
    return this.o.now?.() ?? Date.now();
  }

  /** Validate one body as `caller` and merge it; null on success or the refusal. Also used offline and in benches. */
  ingest(body: string, caller: Caller | null = null): Fail | null {
    const r = this.check(body, caller);
    if (!r.ok) return r.err;
    return this.merge(r);
  }

  private merge(c: Checked & { ok: true }): Fail | null {
    if (c.fallback)
      return this.o.mergeFallback
        ? this.o.mergeFallback(c.fallback)
        : [503, "not-ready", "this collector does not merge fallback reports"];
    if (c.agent)
      return this.o.mergeAgent
        ? this.o.mergeAgent(c.agent)
        : [503, "not-ready", "this collector does not merge agent reports"];
    const report = c.report!;
    const m = mergeReport(this.graph, report, this.now());
    this.diagnose?.addReport(report, this.now());
    for (const [reason, n] of Object.entries(m.reasons)) this.edgesDropped.inc({ reason }, n);
    if (m.merged > 0) this.onMerged(report.proxy.namespace, report.proxy.workload);
    if (m.dropped > 0)
      return [
        507,
        "graph-full",
        `merged ${m.merged}, dropped ${m.dropped} (${Object.entries(m.reasons)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")}); not resendable`,
      ];
    return null;
  }

  private check(body: string, caller: Caller | null): Checked {
    let v: unknown;
    try {
      v = JSON.parse(body);
    } catch (e) {
      return { ok: false, err: [400, "malformed-json", `malformed JSON: ${(e as Error).message}`] };
    }
    // Reports of meshtune's own senders: each kind from its one identity only.
    const kind = v && typeof v === "object" ? (v as { kind?: unknown }).kind : undefined;
    if (kind === "fallback" || kind === "agent") {
      const [id, who] =
        kind === "fallback" ? [this.o.fallbackIdentity, "the fallback"] : [this.o.agentIdentity, "the node agent"];
      if (
        this.o.auth &&
        (!caller || !id || caller.namespace !== id.namespace || caller.serviceAccount !== id.serviceAccount)
      )
        return {
          ok: false,
          err: [
            403,
            "identity-mismatch",
            `only ${who} (${id ? `${id.namespace}/${id.serviceAccount}` : "none configured"}) may send ${kind} reports`,
          ],
        };
      if (kind === "fallback") {
        const f = validateFallbackReport(v);
        return f.ok ? { ok: true, fallback: f.report } : { ok: false, err: [400, "schema", f.detail] };
      }
      const a = validateAgentReport(v);
      if (!a.ok) return { ok: false, err: [400, "schema", a.detail] };
      // All agents share one service account: the node comes from the pod-bound token
      // (TokenReview user.extra), never from the body, so an agent speaks for its own node only.
      if (this.o.auth && caller?.node !== a.report.node)
        return {
          ok: false,
          err: [
            403,
            "identity-mismatch",
            caller?.node
              ? `the agent's token is bound to node ${caller.node}, not ${a.report.node}`
              : `the agent's token carries no node claim (${NODE_NAME_EXTRA}: a pod-bound projected token, Kubernetes ≥ 1.30)`,
          ],
        };
      return { ok: true, agent: a.report };
    }
    const r = validateReport(v);
    if (!r.ok) return { ok: false, err: [400, r.reason as RejectReason, r.detail] };
    const ns = r.report.proxy.namespace;
    if (caller && this.o.bind) {
      const b = this.o.bind(caller, ns, r.report.proxy.workload, r.report.proxy.pod);
      if (b) return { ok: false, err: [b.status, b.reason, b.detail] };
    }
    const c = reportContentError(r.report, ns, this.o.clusterDomain ?? "cluster.local", this.o.index?.() ?? null);
    if (c) return { ok: false, err: [c.status, c.reason, c.detail] };
    return r;
  }

  /** Count a refusal made outside a request (timeouts, dropped connections). */
  count(reason: RejectReason): void {
    this.rejected.inc({ reason });
  }

  /** Authenticate a caller; in insecure mode everyone is an anonymous caller. */
  async caller(req: IncomingMessage): Promise<{ ok: true; caller: Caller | null } | { ok: false; err: Fail }> {
    if (!this.o.auth) return { ok: true, caller: null };
    const source = req.socket.remoteAddress ?? "";
    const r = await identify(req, this.o.auth.self, this.o.auth.reviewer, () => this.reviews.admit(source));
    if (!r.ok) {
      if (r.reason === "unexpected-source") this.noteUnexpectedSource(r.detail);
      return { ok: false, err: [r.status, r.reason, r.detail] };
    }
    let caller = r.caller;
    // A report forwarded by another replica of this controller carries its original caller.
    const fwd = req.headers[FORWARDED_CALLER];
    if (
      typeof fwd === "string" &&
      caller.namespace === this.o.auth.self.namespace &&
      caller.serviceAccount === this.o.auth.self.serviceAccount
    ) {
      const id = parseIdentity(fwd);
      if (!id) return { ok: false, err: [400, "schema", `bad ${FORWARDED_CALLER} header`] };
      const node = req.headers[FORWARDED_NODE];
      caller = { ...caller, ...id, node: typeof node === "string" && NODE_RE.test(node) ? node : undefined };
    }
    return { ok: true, caller };
  }

  /** Say once a minute in the log, and in the readiness detail, why mesh reports are being refused. */
  private noteUnexpectedSource(detail: string): void {
    this.unexpectedSource = detail;
    const t = this.now();
    if (t - this.unexpectedLoggedAt < 60_000) return;
    this.unexpectedLoggedAt = t;
    this.o.log?.("warn", "mesh reports refused: they do not come from this pod's sidecar bind address", { detail });
  }

  /** May this request read graph-derived data (/recommendations, UI data)? null when yes. */
  /** A read of `path` by the caller: its identity, then RBAC on the non-resource URL readUrl(path). */
  async authorizeRead(req: IncomingMessage, path: string): Promise<Fail | null> {
    if (!this.o.auth) return null;
    const c = await this.caller(req);
    if (!c.ok) return c.err;
    const reviewer = this.o.auth.reviewer;
    if (!reviewer || !c.caller) return [403, "forbidden", "no SubjectAccessReview available to authorise reads"];
    try {
      if (await reviewer.allowed(c.caller.user, "get", readUrl(path))) return null;
    } catch (e) {
      return [503, "auth-unavailable", `SubjectAccessReview failed: ${(e as Error).message.split("\n")[0]}`];
    }
    return [403, "forbidden", `${c.caller.user.username} may not get ${path}`];
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? "/";
    if (url === "/metrics" && req.method === "GET") {
      // Open for scraping: counters only, no host or workload names.
      this.registry.metrics().then((m) => {
        res.writeHead(200, { "content-type": this.registry.contentType });
        res.end(m);
      });
      return;
    }
    if (url !== "/v1/reports") {
      res.writeHead(404).end("not found\n");
      return;
    }
    this.report(req, res).catch((e) =>
      this.reject(req, res, 500, "bad-request", `internal error: ${(e as Error).message}`),
    );
  };

  private async report(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST")
      return this.reject(req, res, 405, "method", `method ${req.method} not allowed; use POST`);
    if (!/^application\/json\b/.test(req.headers["content-type"] ?? ""))
      return this.reject(req, res, 415, "content-type", "content-type must be application/json");
    const declared = Number(req.headers["content-length"] ?? NaN);
    if (declared > this.maxBytes)
      return this.reject(req, res, 413, "oversize", `report of ${declared} bytes exceeds ${this.maxBytes}`);
    const who = await this.caller(req);
    if (!who.ok)
      return this.reject(req, res, ...who.err, who.err[0] === 429 || who.err[0] === 503 ? { "retry-after": "1" } : {});
    const key = who.caller ? `${who.caller.namespace}/${who.caller.serviceAccount}` : `ip:${req.socket.remoteAddress}`;
    const wait = this.rate.take(key);
    if (wait > 0)
      return this.reject(
        req,
        res,
        429,
        "rate-limited",
        `more than ${this.limits.ratePerSecond} reports/s from ${key}; retry in ${wait}s`,
        { "retry-after": String(wait) },
      );
    // Reserved only now, for an authenticated identity, from that identity's share: one caller's
    // slow bodies wait on its own share and never make everyone else's reports 503.
    const reserve = Number.isFinite(declared) ? declared : this.maxBytes;
    if (!this.inflight.reserve(reserve, key))
      return this.reject(
        req,
        res,
        503,
        "busy",
        this.inflight.of(key) + reserve > this.inflight.maxPerKey
          ? `${key} has ${this.inflight.of(key)} bytes in flight already (share ${this.inflight.maxPerKey}); retry`
          : `collector is receiving ${this.inflight.used} bytes already; retry`,
        { "retry-after": "1" },
      );
    let body: string | null;
    try {
      body = await this.readBody(req, res);
    } finally {
      this.inflight.release(reserve, key);
    }
    if (body === null) return;
    const c = this.check(body, who.caller);
    if (!c.ok) return this.reject(req, res, ...c.err);
    if (this.relay) {
      // 202 only once the report sits in the leader's graph; otherwise 503 and the filter keeps and retries it.
      let r: { status: number; text: string } | null;
      try {
        r = await this.relay(body, who.caller, req.headers[FORWARDED] !== undefined);
      } catch (e) {
        return this.reject(req, res, 503, "no-leader", `leader unreachable: ${(e as Error).message}`);
      }
      if (r) {
        if (r.status === 202) {
          this.forwarded.inc();
          res.writeHead(202, { "content-type": "application/json" }).end(r.text);
          return;
        }
        return this.reject(
          req,
          res,
          r.status,
          r.status === 503 ? "no-leader" : ((/^([a-z-]+):/.exec(r.text)?.[1] as RejectReason) ?? "schema"),
          r.text.trim().replace(/^[a-z-]+: /, ""),
        );
      }
    }
    const m = this.merge(c);
    if (m) return this.reject(req, res, ...m);
    this.received.inc();
    res.writeHead(202, { "content-type": "application/json" }).end('{"accepted":true}\n');
  }

  /** The body, or null when it was refused (oversize) or the client went away. */
  private readBody(req: IncomingMessage, res: ServerResponse): Promise<string | null> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > this.maxBytes) {
          chunks.length = 0;
          req.removeAllListeners("data");
          this.reject(req, res, 413, "oversize", `report exceeds ${this.maxBytes} bytes`);
          resolve(null);
          return;
        }
        chunks.push(c);
      });
      req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      req.on("error", () => resolve(null));
      req.on("close", () => {
        if (!req.complete) resolve(null);
      });
    });
  }

  /** One-line refusal; the connection is closed so an unread body is never read. */
  private reject(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    reason: RejectReason,
    detail: string,
    headers: Record<string, string> = {},
  ): void {
    this.rejected.inc({ reason });
    if (res.headersSent) return;
    res
      .writeHead(status, { "content-type": "text/plain", connection: "close", ...headers })
      .end(`${reason}: ${detail.split("\n")[0]}\n`);
    if (!req.complete) res.on("finish", () => req.socket.destroySoon());
  }

  /** An HTTP server for this collector alone (the controller serves it beside its own routes). */
  listen(port: number, host = "0.0.0.0"): Promise<Server> {
    const s = createServer(serverOptions, this.handle);
    applyServerLimits(s, this.limits, (r) => this.count(r));
    return new Promise((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, host, () => resolve(s));
    });
  }
}

/**
 * The non-resource URL a read is authorised as. Reads are checked under their own /meshtune/
 * prefix: Kubernetes' built-in system:discovery ClusterRole grants GET on /api and /api/* to every
 * authenticated user (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go), so authorising
 * "/api/dashboard" as itself would admit every ServiceAccount of the cluster.
 */
export function readUrl(path: string): string {
  return `/meshtune${path}`;
}

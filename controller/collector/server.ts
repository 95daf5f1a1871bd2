// Collector: POST /v1/reports from the filters, merged into the shared graph. A bad report
// gets a 4xx with a one-line reason and is counted by reason; it never touches the graph.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Counter, Registry } from "prom-client";
import type { Graph } from "../model/graph.js";
import { MAX_REPORT_BYTES, validateReport } from "./report-schema.js";
import { mergeReport } from "./merge-report.js";
import type { ReportV1 } from "./report-schema.js";

/** Header a standby adds when it forwards a report: the receiver never forwards it again. */
export const FORWARDED = "x-meshtune-forwarded-by";

export type RejectReason = "method" | "content-type" | "oversize" | "malformed-json" | "version" | "schema" | "no-leader";

/** Where a valid report goes when this replica does not merge it itself (a standby forwards to the leader). */
export type Relay = (body: string, forwarded: boolean) => Promise<{ status: number; text: string } | null>;

export class Collector {
  readonly received: Counter;
  /** Called with each merged report's workload (the controller queues it for reconcile). */
  onMerged: (namespace: string, workload: string) => void = () => {};
  /** Set on HA replicas: returns the answer to send instead of merging locally, or null to merge here. */
  relay: Relay | null = null;
  readonly rejected: Counter<"reason">;
  readonly forwarded: Counter;
  constructor(readonly graph: Graph, readonly registry: Registry = new Registry(), readonly maxBytes = MAX_REPORT_BYTES) {
    this.forwarded = new Counter({ name: "meshtune_reports_forwarded_total", help: "Reports a standby forwarded to the leader and the leader accepted", registers: [registry] });
    this.received = new Counter({ name: "meshtune_reports_received_total", help: "Filter reports accepted into the graph", registers: [registry] });
    this.rejected = new Counter({ name: "meshtune_reports_rejected_total", help: "Filter reports rejected, by reason", labelNames: ["reason"], registers: [registry] });
  }

  /** Validate and merge one report body; returns null on success or [status, reason, detail]. */
  ingest(body: string): [number, RejectReason, string] | null {
    const r = this.check(body);
    if (!r.ok) return r.err;
    this.merge(r.report);
    return null;
  }

  /** Merge a report that already passed check(). */
  private merge(report: ReportV1): void {
    mergeReport(this.graph, report);
    this.onMerged(report.proxy.namespace, report.proxy.workload);
  }

  private check(body: string): { ok: true; report: ReportV1 } | { ok: false; err: [number, RejectReason, string] } {
    let v: unknown;
    try { v = JSON.parse(body); } catch (e) { return { ok: false, err: [400, "malformed-json", `malformed JSON: ${(e as Error).message}`] }; }
    const r = validateReport(v);
    return r.ok ? r : { ok: false, err: [400, r.reason as RejectReason, r.detail] };
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? "/";
    if (url === "/metrics" && req.method === "GET") {
      this.registry.metrics().then((m) => { res.writeHead(200, { "content-type": this.registry.contentType }); res.end(m); });
      return;
    }
    if (url !== "/v1/reports") { res.writeHead(404).end("not found\n"); return; }
    if (req.method !== "POST") return this.reject(res, 405, "method", `method ${req.method} not allowed; use POST`);
    if (!/^application\/json\b/.test(req.headers["content-type"] ?? "")) return this.reject(res, 415, "content-type", "content-type must be application/json");
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > this.maxBytes) { req.resume(); return this.reject(res, 413, "oversize", `report of ${declared} bytes exceeds ${this.maxBytes}`); }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > this.maxBytes) { done = true; chunks.length = 0; req.resume(); this.reject(res, 413, "oversize", `report exceeds ${this.maxBytes} bytes`); return; }
      chunks.push(c);
    });
    req.on("end", () => {
      if (done) return;
      done = true;
      const body = Buffer.concat(chunks).toString("utf8");
      const c = this.check(body);
      if (!c.ok) return this.reject(res, c.err[0], c.err[1], c.err[2]);
      const merge = () => {
        this.merge(c.report); // validated once, above
        this.received.inc();
        res.writeHead(202, { "content-type": "application/json" }).end('{"accepted":true}\n');
      };
      if (!this.relay) return merge();
      // 202 only once the report sits in the leader's graph; otherwise 503 and the filter keeps and retries it.
      this.relay(body, req.headers[FORWARDED] !== undefined).then((r) => {
        if (!r) return merge();
        if (r.status === 202) { this.forwarded.inc(); res.writeHead(202, { "content-type": "application/json" }).end(r.text); }
        else this.reject(res, r.status === 503 ? 503 : r.status, r.status === 503 ? "no-leader" : "schema", r.text.trim());
      }, (e) => this.reject(res, 503, "no-leader", `leader unreachable: ${(e as Error).message}`));
    });
    req.on("error", () => { done = true; });
  };

  private reject(res: ServerResponse, status: number, reason: RejectReason, detail: string): void {
    this.rejected.inc({ reason });
    if (!res.headersSent) res.writeHead(status, { "content-type": "text/plain", connection: "close" }).end(`${reason}: ${detail.split("\n")[0]}\n`);
  }

  listen(port: number, host = "0.0.0.0"): Promise<Server> {
    const s = createServer(this.handle);
    return new Promise((resolve, reject) => { s.once("error", reject); s.listen(port, host, () => resolve(s)); });
  }
}

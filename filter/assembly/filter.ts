// meshtune filter, HTTP and network: on every request's (or TCP connection's) log phase, fold
// (cluster, code, duration) into the root context's edge table; on tick, POST a report to the
// collector. Every hook returns Continue: the filter never pauses, delays or fails traffic.
// A new destination the proxy did not know (Passthrough, BlackHole, Istio's block_all route,
// the fallback's cluster) is reported within fastFlushMs instead of the flush interval.
import {
  RootContext,
  Context,
  Counter,
  Headers,
  HeaderPair,
  LogLevelValues,
  WasmResultValues,
  FilterStatusValues,
  log,
} from "@solo-io/proxy-runtime";
import { set_tick_period_milliseconds } from "@solo-io/proxy-runtime/runtime";
import { Config, parseConfig } from "./config";
import { Edge, Table, Unknown } from "./edges";
import { Identity, renderReport } from "./report";
import { headerValue, nowMs, pluginConfig, propInt, propString } from "./host";
import {
  P_CLUSTER,
  P_CODE,
  P_FLAGS,
  P_DURATION,
  P_METHOD,
  P_REQ_SIZE,
  P_RESP_SIZE,
  P_BACKEND_LATENCY,
  P_UPSTREAM_SERVICE_TIME,
  P_HOST,
  P_PROTOCOL,
  P_UPSTREAM,
  P_DESTINATION,
  P_ROUTE,
  P_SNI,
  K_WORKLOAD,
  K_NAMESPACE,
  K_POD,
  K_NODE,
  K_MESH,
  nodeMetadata,
} from "./properties";
const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
const MAX_BACKOFF_TICKS: u32 = 32;
// Istio's REGISTRY_ONLY catch-all route (pilot/pkg/networking/util/util.go BlackHole = "block_all";
// httproute.go buildCatchAllVirtualHost: a DirectResponse 502, so no upstream cluster is set).
const BLOCK_ALL = "block_all";

export class MeshtuneRoot extends RootContext {
  config: Config = new Config();
  table: Table = new Table();
  inflight: Table | null = null;
  id: Identity | null = null;
  droppedEdges: u64 = 0;
  failedReports: u64 = 0;
  backoff: u32 = 0; // ticks to wait after a failure, doubling up to MAX_BACKOFF_TICKS
  skip: u32 = 0;
  urgent: bool = false; // a new unlearned destination is waiting: the tick runs at fastFlushMs
  sent: Counter = new Counter("meshtune_reports_sent");
  failed: Counter = new Counter("meshtune_reports_failed");
  dropped: Counter = new Counter("meshtune_edges_dropped");
  refused: Counter = new Counter("meshtune_reports_refused"); // 4xx/507: not resendable

  createContext(context_id: u32): Context {
    return new MeshtuneStream(context_id, this);
  }

  onConfigure(configuration_size: u32): bool {
    const r = parseConfig(pluginConfig(configuration_size));
    if (r.error != "") log(LogLevelValues.error, "meshtune: invalid pluginConfig, using defaults: " + r.error);
    this.config = r.config;
    set_tick_period_milliseconds(this.config.flushIntervalMs);
    return true; // never reject: the defaults keep the proxy serving
  }

  /** One HTTP request into its edge; the edge, or null (unknown destination, or the table is full). */
  record(cluster: string, code: i64, us: u64, flagged: bool): Edge | null {
    const t = this.table;
    if (t.size == 0) t.startMs = nowMs();
    if (cluster == "PassthroughCluster" || cluster == "BlackHoleCluster") {
      this.unknown(cluster, originalDst(cluster), propString(P_HOST), "", "");
      return null;
    }
    // Outbound edges are kept per requested authority as well as per cluster: the Sidecar must
    // import the requested host (a VirtualService may route it to another host's cluster, and
    // egress-gateway traffic needs the original ServiceEntry host). Inbound: per cluster.
    let dir = "outbound";
    if (cluster.startsWith("inbound")) dir = "inbound";
    let k = cluster;
    let authority = "";
    if (dir == "outbound") {
      authority = propString(P_HOST);
      k = cluster + "#" + authority;
    }
    if (t.edges.has(k)) {
      const cur = t.edges.get(k);
      cur.observe(code, us, flagged);
      return cur;
    }
    if (t.size >= this.config.maxEdges) {
      this.drop();
      return null;
    }
    if (dir == "inbound") authority = propString(P_HOST);
    const e = new Edge(dir, cluster, authority, propString(P_PROTOCOL));
    e.observe(code, us, flagged);
    t.edges.set(k, e);
    t.keys.push(k);
    if (dir == "outbound" && this.isFallback(cluster)) this.hurry();
    return e;
  }

  /** A request Istio's block_all route refused (REGISTRY_ONLY): the requested host is what to learn. */
  recordBlocked(route: string): void {
    const t = this.table;
    if (t.size == 0) t.startMs = nowMs();
    this.unknown("BlackHoleCluster", propString(P_DESTINATION), propString(P_HOST), "", route);
  }

  /**
   * A TCP connection's log phase (network filter: Envoy context.cc onCloseTCP → onDone, onLog).
   * tcp_proxy sets the cluster on the connection's StreamInfo (tcp_proxy.cc
   * establishUpstreamConnection: setUpstreamClusterInfo); HTTP connections have none here (the
   * HTTP filter reports their requests). TLS edges are kept per SNI, the host to import.
   */
  recordTcp(cluster: string, us: u64, flagged: bool, tx: u64, rx: u64): void {
    const t = this.table;
    if (t.size == 0) t.startMs = nowMs();
    const sni = propString(P_SNI);
    if (cluster == "PassthroughCluster" || cluster == "BlackHoleCluster") {
      this.unknown(cluster, originalDst(cluster), "", sni, "");
      return;
    }
    let dir = "outbound";
    if (cluster.startsWith("inbound")) dir = "inbound";
    let proto = "TCP";
    if (sni != "") proto = "TLS";
    const k = cluster + "#" + sni;
    let e: Edge;
    if (t.edges.has(k)) e = t.edges.get(k);
    else {
      if (t.size >= this.config.maxEdges) {
        this.drop();
        return;
      }
      e = new Edge(dir, cluster, sni, proto);
      t.edges.set(k, e);
      t.keys.push(k);
      if (dir == "outbound" && this.isFallback(cluster)) this.hurry();
    }
    e.observe(0, us, flagged);
    e.txBytes += tx;
    e.rxBytes += rx;
  }

  unknown(cluster: string, dst: string, authority: string, sni: string, route: string): void {
    const t = this.table;
    const k = cluster + "|" + dst + "|" + authority + "|" + sni + "|" + route;
    if (t.unknown.has(k)) {
      t.unknown.get(k).count++;
      return;
    }
    if (t.size >= this.config.maxEdges) {
      this.drop();
      return;
    }
    const u = new Unknown(cluster, dst, authority, sni, route);
    u.count = 1;
    t.unknown.set(k, u);
    t.unknownKeys.push(k);
    this.hurry();
  }

  /** outbound|PORT||<fallbackHost>, or Slime's global-sidecar (see controller/sidecar/scope.ts isFallbackHost). */
  isFallback(cluster: string): bool {
    if (cluster.endsWith("||" + this.config.fallbackHost)) return true;
    return cluster.indexOf("||global-sidecar.") > 0;
  }

  drop(): void {
    this.droppedEdges++;
    this.dropped.increment(1);
  }

  identity(): Identity | null {
    if (this.id === null) {
      const id = new Identity();
      id.workload = nodeMetadata(K_WORKLOAD);
      id.pod = nodeMetadata(K_POD);
      if (id.workload == "") id.workload = id.pod;
      id.namespace = nodeMetadata(K_NAMESPACE);
      id.node = nodeMetadata(K_NODE);
      id.mesh = nodeMetadata(K_MESH);
      if (id.mesh == "") id.mesh = "cluster.local";
      if (id.workload == "" || id.namespace == "") {
        log(LogLevelValues.error, "meshtune: node metadata lacks WORKLOAD_NAME/NAME or NAMESPACE; not reporting");
        return null;
      }
      this.id = id;
    }
    return this.id;
  }

  /**
   * Report a new unlearned destination soon: shorten the tick to fastFlushMs once; the next tick
   * restores the flush interval. Envoy re-arms the root's timer on every period change
   * (source/extensions/common/wasm/wasm.cc Wasm::setTickPeriod).
   */
  hurry(): void {
    if (this.urgent || this.config.fastFlushMs >= this.config.flushIntervalMs) return;
    this.urgent = true;
    set_tick_period_milliseconds(this.config.fastFlushMs);
  }

  onTick(): void {
    if (this.urgent) {
      this.urgent = false;
      set_tick_period_milliseconds(this.config.flushIntervalMs);
    }
    if (this.inflight !== null) return; // one report at a time; the host times it out
    if (this.skip > 0) {
      this.skip--;
      return;
    } // backing off after a failure
    if (this.table.size == 0 && this.droppedEdges == 0) return;

    const id = this.identity();
    if (id === null) return;
    const body = String.UTF8.encode(renderReport(id, this.table, nowMs(), this.droppedEdges, this.failedReports));
    const headers: Headers = [];
    headers.push(new HeaderPair(String.UTF8.encode(":method"), String.UTF8.encode("POST")));
    headers.push(new HeaderPair(String.UTF8.encode(":path"), String.UTF8.encode("/v1/reports")));
    headers.push(new HeaderPair(String.UTF8.encode(":authority"), String.UTF8.encode(this.config.collectorAuthority)));
    headers.push(new HeaderPair(String.UTF8.encode("content-type"), String.UTF8.encode("application/json")));
    this.inflight = this.table;
    this.table = new Table();
    const r = this.httpCall(
      this.config.collectorCluster,
      headers,
      body,
      [],
      this.config.timeoutMs,
      this,
      onReportResponse,
    );
    if (r != WasmResultValues.Ok) this.settle(false);
  }

  /**
   * Success drops the in-flight data; a retryable failure (no answer, 429, 5xx but 507) folds it
   * back (bounded) and backs off. A refusal that resending cannot change (4xx: the report is
   * invalid or not ours to send; 507: the collector merged what fit and dropped the rest) is
   * dropped and counted: resending would only double-count what was merged.
   */
  settle(ok: bool, final: bool = false): void {
    const f = this.inflight;
    this.inflight = null;
    if (f === null) return;
    if (final) {
      this.refused.increment(1);
      this.backoff = 0;
      return;
    }
    if (ok) {
      this.sent.increment(1);
      this.droppedEdges = 0;
      this.failedReports = 0;
      this.backoff = 0;
      return;
    }
    this.failed.increment(1);
    this.failedReports++;
    this.backoff = this.backoff == 0 ? 1 : this.backoff * 2 > MAX_BACKOFF_TICKS ? MAX_BACKOFF_TICKS : this.backoff * 2;
    this.skip = this.backoff;
    const t = this.table;
    if (f.startMs < t.startMs || t.size == 0) t.startMs = f.startMs;
    for (let i = 0; i < f.keys.length; i++) {
      const k = f.keys[i];
      const e = f.edges.get(k);
      if (t.edges.has(k)) t.edges.get(k).add(e);
      else if (t.size < this.config.maxEdges) {
        t.edges.set(k, e);
        t.keys.push(k);
      } else this.drop();
    }
    for (let i = 0; i < f.unknownKeys.length; i++) {
      const k = f.unknownKeys[i];
      const u = f.unknown.get(k);
      if (t.unknown.has(k)) t.unknown.get(k).count += u.count;
      else if (t.size < this.config.maxEdges) {
        t.unknown.set(k, u);
        t.unknownKeys.push(k);
      } else this.drop();
    }
  }
}

/** RFC 9110 9.2.2: methods whose repetition has the same intended effect (safe to retry). */
function idempotent(m: string): bool {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

/** Where a Passthrough/BlackHole connection was headed: the upstream Passthrough dialled, else the original destination. */
function originalDst(cluster: string): string {
  // AS 0.14's reference counting mishandles string-valued ternaries: plain ifs.
  let dst = "";
  if (cluster == "PassthroughCluster") dst = propString(P_UPSTREAM);
  if (dst == "") dst = propString(P_DESTINATION);
  return dst;
}

function onReportResponse(origin: Context, headers: u32, body_size: usize, trailers: u32): void {
  const root = changetype<MeshtuneRoot>(origin);
  let status = "";
  if (headers != 0) status = headerValue(HTTP_CALL_RESPONSE_HEADERS, ":status");
  const ok = status.length == 3 && status.charCodeAt(0) == 50; // 2xx
  const final =
    status == "507" || (status.length == 3 && status.charCodeAt(0) == 52 && status != "429" && status != "408"); // 4xx but 408/429, 507
  if (!ok) {
    let why = " (no response)";
    if (status != "") why = " (status " + status + ")";
    log(
      LogLevelValues.warn,
      "meshtune: report to collector " + (final ? "refused, not resent" : "failed, will retry") + why,
    );
  }
  root.settle(ok, final);
}

export class MeshtuneStream extends Context {
  tcp: bool = false;
  startMs: u64 = 0;
  tx: u64 = 0;
  rx: u64 = 0;
  constructor(context_id: u32, root: MeshtuneRoot) {
    super(context_id, root);
  }

  // Network filter hooks (WasmPlugin type NETWORK; exported in network.ts): mark the context
  // as a TCP connection and count bytes. Never a host call on the data path.
  onNewConnection(): FilterStatusValues {
    this.tcp = true;
    this.startMs = nowMs();
    return FilterStatusValues.Continue;
  }
  onDownstreamData(size: usize, end: bool): FilterStatusValues {
    this.tx += <u64>size;
    return FilterStatusValues.Continue;
  }
  onUpstreamData(size: usize, end: bool): FilterStatusValues {
    this.rx += <u64>size;
    return FilterStatusValues.Continue;
  }

  onLog(): void {
    const root = changetype<MeshtuneRoot>(this.root_context);
    const cluster = propString(P_CLUSTER);
    if (this.tcp) {
      if (cluster == "") return; // an HTTP connection (its requests are the HTTP filter's) or no upstream
      root.recordTcp(cluster, (nowMs() - this.startMs) * 1000, propInt(P_FLAGS, 0) != 0, this.tx, this.rx);
      return;
    }
    if (cluster == "") {
      // A local reply with no upstream. Only Istio's block_all refusal teaches something.
      const route = propString(P_ROUTE);
      if (route == BLOCK_ALL) root.recordBlocked(route);
      return;
    }
    const code = propInt(P_CODE, 0);
    const ns = propInt(P_DURATION, 0);
    const flags = propInt(P_FLAGS, 0);
    const e = root.record(cluster, code, <u64>(ns < 0 ? 0 : ns / 1000), flags != 0);
    if (e === null || !root.config.timings) return;
    // Timings of both ends (report v2): the upstream time, request/response sizes, method class.
    let up = propInt(P_BACKEND_LATENCY, -1);
    if (up >= 0) e.upstream(<u64>(up / 1000));
    else {
      const ms = propString(P_UPSTREAM_SERVICE_TIME);
      if (ms != "") {
        up = I64.parseInt(ms);
        if (up >= 0) e.upstream(<u64>(up * 1000));
      }
    }
    const req = propInt(P_REQ_SIZE, 0);
    const resp = propInt(P_RESP_SIZE, 0);
    if (req > 0) e.txBytes += <u64>req;
    if (resp > 0) e.rxBytes += <u64>resp;
    if (idempotent(propString(P_METHOD))) e.idempotent++;
    else e.otherMethods++;
  }
}

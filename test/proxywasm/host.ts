// TEST DOUBLE: a proxy-wasm host (one Envoy worker's Wasm VM), modelled on the Go SDK's
// proxytest emulator: a builder for properties and configuration; recorded logs, metrics and
// http callouts; the root/stream context lifecycle driven the way Envoy drives it. Host
// functions follow ABI 0.2.x and Envoy's semantics, each cited below from Envoy's
// source/extensions/common/wasm/context.cc (commit b40935ac); anything not implemented
// answers WasmResult.Unimplemented. Network filters follow Envoy's Context (context.cc at
// 031fa2b5: onNewConnection → onCreate + proxy_on_new_connection; onData/onWrite →
// proxy_on_downstream_data/proxy_on_upstream_data; close → onCloseTCP: proxy_on_done,
// proxy_on_log, proxy_on_delete) with the connection's StreamInfo as the property source.
// Not modelled: body/trailer hooks, gRPC calls, shared data/queues; one VM per worker is in ./workers.ts.
import { readFileSync } from "node:fs";
import {
  BufferType,
  MapType,
  MetricType,
  WasmResult,
  LOG_LEVELS,
  type LogLevelName,
  type Pairs,
  type PropValue,
  encodeProperty,
  propertyPath,
  serializePairs,
  deserializePairs,
} from "./abi.js";

export interface LogEntry {
  level: LogLevelName;
  message: string;
}
export interface Metric {
  name: string;
  type: MetricType;
  value: bigint;
}
export interface Callout {
  token: number;
  upstream: string;
  headers: Pairs;
  body: Uint8Array;
  timeoutMs: number;
  answered: boolean;
}
export interface HttpExchange {
  requestHeaders?: Pairs;
  responseHeaders?: Pairs;
  /** Per-stream properties (xds.cluster_name, response.code, request.duration, ...). */
  properties?: Record<string, PropValue>;
}

const ROOT_ID = 1;
/** A host import: the Wasm side passes i32/i64 numbers and reads back a status code. */

type HostFn = (...args: any[]) => unknown;

export class HostBuilder {
  private module: WebAssembly.Module | null = null;
  private plugin = "";
  private vm = "";
  private rootId = "meshtune";
  private props = new Map<string, Uint8Array>();
  private startMs = Date.parse("2026-11-20T10:00:00Z");

  wasmFile(path: string): this {
    this.module = new WebAssembly.Module(readFileSync(path));
    return this;
  }
  wasmModule(m: WebAssembly.Module): this {
    this.module = m;
    return this;
  }
  pluginConfig(json: string | object): this {
    this.plugin = typeof json === "string" ? json : JSON.stringify(json);
    return this;
  }
  vmConfig(s: string): this {
    this.vm = s;
    return this;
  }
  pluginRootId(id: string): this {
    this.rootId = id;
    return this;
  }
  /** A property by path: "a.b.c" or ["a","b","c"] (use the array form when a segment holds a dot). */
  property(path: string | string[], v: PropValue): this {
    this.props.set(propertyPath(Array.isArray(path) ? path : path.split(".")), encodeProperty(v));
    return this;
  }
  /**
   * Node metadata as the given Envoy version serves it. Envoy ≥ 1.33 removed the Wasm-only
   * top-level `node` token (context.cc PROPERTY_TOKENS holds only plugin_name, plugin_root_id,
   * plugin_vm_id, connection_id); the CEL `xds.node` attribute (expr/context.h XdsWrapper) is the
   * only path. Older Envoy: `node.metadata.*` (and, conservatively, no `xds.node`).
   */
  nodeMetadata(md: Record<string, string>): this {
    this.md = md;
    return this;
  }
  /** Envoy version the host behaves as (default 1.36, what Istio 1.27 ships). */
  envoy(version: string): this {
    this.envoyVersion = version;
    return this;
  }
  private md: Record<string, string> = {};
  private envoyVersion = "1.36";
  clockMs(ms: number): this {
    this.startMs = ms;
    return this;
  }
  /** Like Envoy's --component-log-level wasm:LEVEL: lower levels are dropped unread (default: record all). */
  logLevel(level: LogLevelName): this {
    this.minLevel = LOG_LEVELS.indexOf(level);
    return this;
  }
  private minLevel = 0;

  build(): ProxyHost {
    if (!this.module) throw new Error("HostBuilder: no wasm module");
    this.props.set(propertyPath(["plugin_root_id"]), encodeProperty(this.rootId));
    const [maj, min] = this.envoyVersion.split(".").map(Number);
    const modern = maj > 1 || min >= 33;
    for (const [k, v] of Object.entries(this.md))
      this.property(modern ? ["xds", "node", "metadata", k] : ["node", "metadata", k], v);
    return new ProxyHost(this.module, this.plugin, this.vm, this.props, this.startMs, this.minLevel);
  }
}

export class ProxyHost {
  readonly logs: LogEntry[] = [];
  readonly metrics = new Map<number, Metric>();
  readonly callouts: Callout[] = [];
  tickPeriodMs = 0;
  /** The env imports handed to the module: tests call them directly to check ABI behaviour. */
  readonly env: Record<string, HostFn> = {};
  nowNs: bigint;
  private readonly instance: WebAssembly.Instance;
  private readonly exports: Record<string, any>;
  private nextContextId = ROOT_ID + 1;
  private nextToken = 1;
  private nextMetric = 1;
  private effective = ROOT_ID;
  private streamProps = new Map<number, Map<string, Uint8Array>>();
  private maps = new Map<number, Map<MapType, Pairs>>();
  private callResponse: { headers: Pairs; body: Uint8Array; trailers: Pairs } | null = null;
  private readonly dec = new TextDecoder();
  /** Count of host calls by name, for tests of the harness itself and for benches. */
  readonly calls = new Map<string, number>();

  constructor(
    module: WebAssembly.Module,
    private plugin: string,
    private vm: string,
    private props: Map<string, Uint8Array>,
    startMs: number,
    private minLevel: number,
  ) {
    this.nowNs = BigInt(startMs) * 1_000_000n;
    const fns = this.hostFunctions() as Record<string, HostFn>;
    for (const imp of WebAssembly.Module.imports(module))
      if (imp.kind === "function" && imp.module === "env")
        this.env[imp.name] = fns[imp.name] ?? (() => WasmResult.Unimplemented);
    this.instance = new WebAssembly.Instance(module, {
      env: this.env,
      wasi_unstable: {
        proc_exit: (code: number) => {
          throw new Error(`wasm called proc_exit(${code}): ${this.logs.at(-1)?.message ?? ""}`);
        },
      },
      wasi_snapshot_preview1: {
        proc_exit: (code: number) => {
          throw new Error(`wasm called proc_exit(${code})`);
        },
      },
    });
    this.exports = this.instance.exports as Record<string, any>;
  }

  /** Module-side allocation, for tests that call host functions directly. */
  alloc(data: Uint8Array | string): [number, number] {
    const b = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const p = (this.exports.malloc as (n: number) => number)(Math.max(1, b.length));
    this.bytes(p, b.length).set(b);
    return [p, b.length];
  }
  read(ptr: number, len: number): Uint8Array {
    return this.bytes(ptr, len).slice();
  }
  u32(ptr: number): number {
    return this.mem.getUint32(ptr, true);
  }

  // ---- memory helpers ----
  // Views over linear memory, rebuilt only when memory.grow replaced the buffer.
  private viewBuf: ArrayBuffer | null = null;
  private dv!: DataView;
  private u8!: Uint8Array;
  private refresh(): void {
    const b = (this.exports.memory as WebAssembly.Memory).buffer;
    if (b !== this.viewBuf) {
      this.viewBuf = b;
      this.dv = new DataView(b);
      this.u8 = new Uint8Array(b);
    }
  }
  private get mem(): DataView {
    this.refresh();
    return this.dv;
  }
  private bytes(ptr: number, len: number): Uint8Array {
    this.refresh();
    return this.u8.subarray(ptr, ptr + len);
  }
  private str(ptr: number, len: number): string {
    return this.dec.decode(this.bytes(ptr, len));
  }
  /** Property paths come from the same few module buffers on every request: memoise by address, verified by content. */
  private pathCache = new Map<number, { bytes: Uint8Array; path: string }>();
  private pathAt(ptr: number, len: number): string {
    const b = this.bytes(ptr, len);
    const hit = this.pathCache.get(ptr * 4096 + len);
    if (hit) {
      let same = true;
      for (let i = 0; i < len; i++)
        if (hit.bytes[i] !== b[i]) {
          same = false;
          break;
        }
      if (same) return hit.path;
    }
    const path = this.dec.decode(b);
    if (this.pathCache.size > 1024) this.pathCache.clear();
    this.pathCache.set(ptr * 4096 + len, { bytes: b.slice(), path });
    return path;
  }
  /** Copy data into a module-allocated buffer (malloc / proxy_on_memory_allocate) and return it via two out-pointers. */
  private give(data: Uint8Array, ptrPtr: number, lenPtr: number): WasmResult {
    const alloc = this.exports.proxy_on_memory_allocate ?? this.exports.malloc;
    const p = data.length === 0 ? 0 : (alloc(data.length) as number);
    if (data.length) this.bytes(p, data.length).set(data);
    this.mem.setUint32(ptrPtr, p, true);
    this.mem.setUint32(lenPtr, data.length, true);
    return WasmResult.Ok;
  }
  private count(name: string) {
    this.calls.set(name, (this.calls.get(name) ?? 0) + 1);
  }

  private mapFor(t: MapType): Pairs | null {
    if (t === MapType.HttpCallResponseHeaders) return this.callResponse?.headers ?? null;
    if (t === MapType.HttpCallResponseTrailers) return this.callResponse?.trailers ?? null;
    return this.maps.get(this.effective)?.get(t) ?? null;
  }

  private hostFunctions() {
    return {
      proxy_log: (level: number, ptr: number, len: number) => {
        if (level < this.minLevel) return WasmResult.Ok;
        this.logs.push({ level: LOG_LEVELS[level] ?? "critical", message: this.str(ptr, len) });
        return WasmResult.Ok;
      },
      proxy_get_current_time_nanoseconds: (ptr: number) => {
        this.mem.setBigUint64(ptr, this.nowNs, true);
        return WasmResult.Ok;
      },
      proxy_set_tick_period_milliseconds: (ms: number) => {
        this.tickPeriodMs = ms;
        return WasmResult.Ok;
      },
      proxy_get_property: (pathPtr: number, pathLen: number, ptrPtr: number, lenPtr: number) => {
        this.count("proxy_get_property");
        const path = this.pathAt(pathPtr, pathLen);
        const v = this.streamProps.get(this.effective)?.get(path) ?? this.props.get(path);
        return v ? this.give(v, ptrPtr, lenPtr) : WasmResult.NotFound;
      },
      proxy_set_property: (pathPtr: number, pathLen: number, vPtr: number, vLen: number) => {
        const path = this.str(pathPtr, pathLen);
        const target = this.streamProps.get(this.effective) ?? this.props;
        target.set(path, this.bytes(vPtr, vLen).slice());
        return WasmResult.Ok;
      },
      proxy_get_buffer_bytes: (type: number, start: number, maxLen: number, ptrPtr: number, lenPtr: number) => {
        let data: Uint8Array | null;
        if (type === BufferType.PluginConfiguration) data = new TextEncoder().encode(this.plugin);
        else if (type === BufferType.VmConfiguration) data = new TextEncoder().encode(this.vm);
        else if (type === BufferType.HttpCallResponseBody) data = this.callResponse?.body ?? null;
        else return WasmResult.Unimplemented;
        if (!data || data.length === 0) return WasmResult.NotFound;
        if (start > data.length) return WasmResult.BadArgument;
        return this.give(data.subarray(start, Math.min(data.length, start + maxLen)), ptrPtr, lenPtr);
      },
      proxy_get_buffer_status: (type: number, lenPtr: number, flagsPtr: number) => {
        const data =
          type === BufferType.PluginConfiguration ? this.plugin : type === BufferType.VmConfiguration ? this.vm : null;
        if (data === null) return WasmResult.Unimplemented;
        this.mem.setUint32(lenPtr, Buffer.byteLength(data), true);
        this.mem.setUint32(flagsPtr, 0, true);
        return WasmResult.Ok;
      },
      proxy_get_header_map_value: (t: number, kPtr: number, kLen: number, ptrPtr: number, lenPtr: number) => {
        const m = this.mapFor(t);
        if (!m) return WasmResult.BadArgument;
        const key = this.str(kPtr, kLen).toLowerCase();
        const hit = m.find(([k]) => k === key);
        return hit ? this.give(new TextEncoder().encode(hit[1]), ptrPtr, lenPtr) : WasmResult.NotFound;
      },
      proxy_get_header_map_pairs: (t: number, ptrPtr: number, lenPtr: number) => {
        const m = this.mapFor(t);
        return m ? this.give(serializePairs(m), ptrPtr, lenPtr) : WasmResult.BadArgument;
      },
      proxy_get_header_map_size: (t: number, sizePtr: number) => {
        const m = this.mapFor(t);
        if (!m) return WasmResult.BadArgument;
        this.mem.setUint32(sizePtr, serializePairs(m).length, true);
        return WasmResult.Ok;
      },
      proxy_set_header_map_pairs: (t: number, ptr: number, len: number) => {
        const m = this.mapFor(t);
        if (!m || t >= MapType.GrpcReceiveInitialMetadata) return WasmResult.BadArgument;
        m.splice(0, m.length, ...deserializePairs(this.bytes(ptr, len).slice()));
        return WasmResult.Ok;
      },
      proxy_add_header_map_value: (t: number, kPtr: number, kLen: number, vPtr: number, vLen: number) => {
        const m = this.mapFor(t);
        if (!m || t >= MapType.GrpcReceiveInitialMetadata) return WasmResult.BadArgument;
        m.push([this.str(kPtr, kLen).toLowerCase(), this.str(vPtr, vLen)]);
        return WasmResult.Ok;
      },
      proxy_replace_header_map_value: (t: number, kPtr: number, kLen: number, vPtr: number, vLen: number) => {
        const m = this.mapFor(t);
        if (!m || t >= MapType.GrpcReceiveInitialMetadata) return WasmResult.BadArgument;
        const key = this.str(kPtr, kLen).toLowerCase();
        const rest = m.filter(([k]) => k !== key);
        m.splice(0, m.length, ...rest, [key, this.str(vPtr, vLen)]);
        return WasmResult.Ok;
      },
      proxy_remove_header_map_value: (t: number, kPtr: number, kLen: number) => {
        const m = this.mapFor(t);
        if (!m || t >= MapType.GrpcReceiveInitialMetadata) return WasmResult.BadArgument;
        const key = this.str(kPtr, kLen).toLowerCase();
        m.splice(0, m.length, ...m.filter(([k]) => k !== key));
        return WasmResult.Ok;
      },
      proxy_http_call: (
        uPtr: number,
        uLen: number,
        hPtr: number,
        hLen: number,
        bPtr: number,
        bLen: number,
        _tPtr: number,
        _tLen: number,
        timeoutMs: number,
        tokenPtr: number,
      ) => {
        const upstream = this.str(uPtr, uLen);
        const headers = deserializePairs(this.bytes(hPtr, hLen).slice());
        // Envoy httpCall: BadArgument when getThreadLocalCluster(cluster) is null (the proxy has no
        // such cluster: e.g. a Sidecar scope that does not import it), or without :path, :method, host.
        if (timeoutMs < 0) return WasmResult.BadArgument;
        if (this.clusters && !this.clusters(upstream)) return WasmResult.BadArgument;
        const has = (k: string) => headers.some(([h]) => h === k);
        if (!has(":method") || !has(":path") || !has(":authority")) return WasmResult.BadArgument;
        const token = this.nextToken++;
        this.callouts.push({
          token,
          upstream,
          headers,
          body: this.bytes(bPtr, bLen).slice(),
          timeoutMs,
          answered: false,
        });
        this.mem.setUint32(tokenPtr, token, true);
        return WasmResult.Ok;
      },
      proxy_define_metric: (type: number, nPtr: number, nLen: number, idPtr: number) => {
        if (type > MetricType.Histogram) return WasmResult.BadArgument;
        const name = this.str(nPtr, nLen);
        let id = [...this.metrics].find(([, m]) => m.name === name)?.[0];
        if (id === undefined) {
          id = this.nextMetric++;
          this.metrics.set(id, { name, type, value: 0n });
        }
        this.mem.setUint32(idPtr, id, true);
        return WasmResult.Ok;
      },
      proxy_increment_metric: (id: number, offset: bigint) => {
        const m = this.metrics.get(id);
        if (!m) return WasmResult.NotFound;
        if (m.type === MetricType.Histogram) return WasmResult.BadArgument;
        // Envoy incrementMetric: a counter takes only offset > 0, else BadArgument; gauges go both ways.
        if (m.type === MetricType.Counter && BigInt(offset) <= 0n) return WasmResult.BadArgument;
        m.value += BigInt(offset);
        return WasmResult.Ok;
      },
      proxy_record_metric: (id: number, value: bigint) => {
        const m = this.metrics.get(id);
        if (!m) return WasmResult.NotFound;
        m.value = BigInt.asUintN(64, BigInt(value));
        return WasmResult.Ok;
      },
      proxy_get_metric: (id: number, ptr: number) => {
        const m = this.metrics.get(id);
        if (!m) return WasmResult.NotFound;
        if (m.type === MetricType.Histogram) return WasmResult.BadArgument;
        this.mem.setBigUint64(ptr, m.value, true);
        return WasmResult.Ok;
      },
      proxy_set_effective_context: (id: number) => {
        if (id !== ROOT_ID && !this.streamProps.has(id)) return WasmResult.BadArgument;
        this.effective = id;
        return WasmResult.Ok;
      },
      proxy_continue_stream: () => WasmResult.Ok,
      proxy_done: () => WasmResult.Ok,
    };
  }

  /** The clusters this proxy has (e.g. from the Istio oracle's CDS); null: every cluster exists. */
  clusters: ((name: string) => boolean) | null = null;

  private call(fn: string, ctx: number, ...args: number[]): number {
    const f = this.exports[fn];
    if (!f) return 0;
    const prev = this.effective;
    this.effective = ctx;
    try {
      return f(ctx, ...args) as number;
    } finally {
      this.effective = prev;
    }
  }

  // ---- lifecycle (as Envoy drives it) ----
  /** Root context: create, vm start, configure. Returns proxy_on_configure's verdict. */
  start(): boolean {
    this.exports._start?.();
    this.call("proxy_on_context_create", ROOT_ID, 0);
    this.call("proxy_on_vm_start", ROOT_ID, Buffer.byteLength(this.vm));
    return this.call("proxy_on_configure", ROOT_ID, Buffer.byteLength(this.plugin)) === 1;
  }

  advance(ms: number): void {
    this.nowNs += BigInt(Math.round(ms * 1e6));
  }

  tick(): void {
    this.advance(this.tickPeriodMs);
    this.call("proxy_on_tick", ROOT_ID);
  }

  /**
   * One HTTP stream: request headers, response headers, then, as Envoy ends a stream, the access
   * log phase (Context::log → proxy_on_log, once the request is complete) followed by filter
   * destruction (Context::onDestroy → proxy_on_done, proxy_on_delete).
   */
  http(x: HttpExchange): { request: number; response: number } {
    const id = this.nextContextId++;
    const props = new Map<string, Uint8Array>();
    for (const [k, v] of Object.entries(x.properties ?? {})) props.set(propertyPath(k.split(".")), encodeProperty(v));
    this.streamProps.set(id, props);
    this.maps.set(
      id,
      new Map([
        [MapType.RequestHeaders, [...(x.requestHeaders ?? [])]],
        [MapType.ResponseHeaders, [...(x.responseHeaders ?? [])]],
      ]),
    );
    try {
      this.call("proxy_on_context_create", id, ROOT_ID);
      const request = this.call("proxy_on_request_headers", id, (x.requestHeaders ?? []).length, 1);
      const response = this.call("proxy_on_response_headers", id, (x.responseHeaders ?? []).length, 1);
      this.call("proxy_on_log", id);
      this.call("proxy_on_done", id);
      this.call("proxy_on_delete", id);
      return { request, response };
    } finally {
      this.streamProps.delete(id);
      this.maps.delete(id);
    }
  }

  /**
   * One TCP connection through a network filter: new connection, data both ways (chunk sizes),
   * then the close sequence onCloseTCP runs (done, log, delete). `properties` are the
   * connection StreamInfo's at close (xds.cluster_name from tcp_proxy, upstream.address, ...).
   */
  tcp(x: { properties?: Record<string, PropValue>; sent?: number[]; received?: number[]; ms?: number }): void {
    const id = this.nextContextId++;
    const props = new Map<string, Uint8Array>();
    for (const [k, v] of Object.entries(x.properties ?? {})) props.set(propertyPath(k.split(".")), encodeProperty(v));
    this.streamProps.set(id, props);
    try {
      this.call("proxy_on_context_create", id, ROOT_ID);
      this.call("proxy_on_new_connection", id);
      for (const n of x.sent ?? []) this.call("proxy_on_downstream_data", id, n, 0);
      for (const n of x.received ?? []) this.call("proxy_on_upstream_data", id, n, 0);
      this.advance(x.ms ?? 0);
      this.call("proxy_on_downstream_connection_close", id, 1);
      this.call("proxy_on_done", id);
      this.call("proxy_on_log", id);
      this.call("proxy_on_delete", id);
    } finally {
      this.streamProps.delete(id);
    }
  }

  /** Answer a callout (Envoy: proxy_on_http_call_response in the root context). */
  respond(c: Callout, r: { status: number; headers?: Pairs; body?: string }): void {
    this.answer(c, {
      headers: [[":status", String(r.status)], ...(r.headers ?? [])],
      body: new TextEncoder().encode(r.body ?? ""),
      trailers: [],
    });
  }

  /** Fail a callout the way Envoy does on reset/timeout: a response with no headers and no body. */
  fail(c: Callout): void {
    this.answer(c, { headers: [], body: new Uint8Array(), trailers: [] });
  }

  private answer(c: Callout, r: { headers: Pairs; body: Uint8Array; trailers: Pairs }): void {
    if (c.answered) throw new Error(`callout ${c.token} already answered`);
    c.answered = true;
    this.callResponse = r;
    try {
      this.call("proxy_on_http_call_response", ROOT_ID, c.token, r.headers.length, r.body.length, r.trailers.length);
    } finally {
      this.callResponse = null;
    }
  }

  metric(name: string): bigint | undefined {
    return [...this.metrics.values()].find((m) => m.name === name)?.value;
  }
  pending(): Callout[] {
    return this.callouts.filter((c) => !c.answered);
  }
  logsAt(level: LogLevelName): string[] {
    return this.logs.filter((l) => l.level === level).map((l) => l.message);
  }
}

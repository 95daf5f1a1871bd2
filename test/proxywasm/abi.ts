// Proxy-Wasm ABI v0.2.x constants (spec: proxy-wasm/spec abi-versions/v0.2.1, and Envoy's
// proxy-wasm-cpp-host, whose numbering the SDKs use).
export const enum WasmResult {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
  SerializationFailure = 3,
  ParseFailure = 4,
  BadExpression = 5,
  InvalidMemoryAccess = 6,
  Empty = 7,
  CasMismatch = 8,
  ResultMismatch = 9,
  InternalFailure = 10,
  BrokenConnection = 11,
  Unimplemented = 12,
}
export const enum MapType {
  RequestHeaders = 0,
  RequestTrailers = 1,
  ResponseHeaders = 2,
  ResponseTrailers = 3,
  GrpcReceiveInitialMetadata = 4,
  GrpcReceiveTrailingMetadata = 5,
  HttpCallResponseHeaders = 6,
  HttpCallResponseTrailers = 7,
}
export const enum BufferType {
  HttpRequestBody = 0,
  HttpResponseBody = 1,
  DownstreamData = 2,
  UpstreamData = 3,
  HttpCallResponseBody = 4,
  GrpcReceiveBuffer = 5,
  VmConfiguration = 6,
  PluginConfiguration = 7,
  CallData = 8,
}
export const enum MetricType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "critical"] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];
export const enum FilterHeadersStatus {
  Continue = 0,
  StopIteration = 1,
}

export type Pairs = [string, string][];

/** ABI header-map serialization: u32 count, count × (u32 keyLen, u32 valueLen), then key\0value\0 ... */
export function serializePairs(pairs: Pairs): Uint8Array {
  const enc = new TextEncoder();
  const kv = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)] as const);
  const size = 4 + kv.length * 8 + kv.reduce((a, [k, v]) => a + k.length + v.length + 2, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, kv.length, true);
  let off = 4;
  for (const [k, v] of kv) {
    dv.setUint32(off, k.length, true);
    dv.setUint32(off + 4, v.length, true);
    off += 8;
  }
  for (const [k, v] of kv) {
    out.set(k, off);
    off += k.length + 1;
    out.set(v, off);
    off += v.length + 1;
  }
  return out;
}

export function deserializePairs(buf: Uint8Array): Pairs {
  if (buf.length < 4) return [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getUint32(0, true);
  const dec = new TextDecoder();
  let off = 4 + n * 8;
  const out: Pairs = [];
  for (let i = 0; i < n; i++) {
    const kl = dv.getUint32(4 + i * 8, true),
      vl = dv.getUint32(8 + i * 8, true);
    const k = dec.decode(buf.subarray(off, off + kl));
    off += kl + 1;
    const v = dec.decode(buf.subarray(off, off + vl));
    off += vl + 1;
    out.push([k, v]);
  }
  return out;
}

/** Envoy property encoding: strings raw UTF-8; ints, durations (ns) and timestamps (ns) 8-byte LE. */
export type PropValue = string | number | bigint | Uint8Array;
export function encodeProperty(v: PropValue): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return new TextEncoder().encode(v);
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, BigInt(v), true);
  return out;
}

/** Property paths are NUL-separated segments ("node\0metadata\0WORKLOAD_NAME"). */
export const propertyPath = (segments: string[]) => segments.join("\0");

// Envoy attribute paths the filter reads, and typed getters for them. One place for every
// path, each with the Envoy source it follows (paths are NUL-separated per the proxy-wasm ABI).
//
// Envoy ≥ 1.33 (Istio ≥ 1.25) resolves properties through the CEL StreamActivation
// (source/extensions/filters/common/expr/context.h/.cc); the Wasm-only top-level tokens left
// in source/extensions/common/wasm/context.cc are plugin_name, plugin_root_id, plugin_vm_id
// and connection_id: the old top-level `node` token is gone, so node metadata is read from
// `xds.node` (XdsWrapper, key "node": the config.core.v3.Node message; `metadata` is a
// google.protobuf.Struct, looked up by key). Older Envoy only has `node.metadata.*`.
import { path2, path3, path4, propString } from "./host";

// Stream attributes (Envoy docs "Attributes"; expr/context.h RequestWrapper/ResponseWrapper/XdsWrapper).
export const P_CLUSTER = path2("xds", "cluster_name"); // upstream cluster name (string)
export const P_ROUTE = path2("xds", "route_name"); // route name (string), e.g. "block_all"
export const P_CODE = path2("response", "code"); // int64
export const P_FLAGS = path2("response", "flags"); // int64 bitset of ResponseFlag
export const P_DURATION = path2("request", "duration"); // duration, int64 ns
export const P_METHOD = path2("request", "method"); // ":method" (string)
export const P_REQ_SIZE = path2("request", "total_size"); // body + headers received (int64)
export const P_RESP_SIZE = path2("response", "total_size"); // body + headers + trailers sent (int64)
// Upstream time. context.cc ResponseLookupValues BackendLatency: lastUpstreamRxByteReceived -
// firstUpstreamTxByteSent (duration, int64 ns), absent when no upstream answered. Where an Envoy
// lacks the attribute, the router's x-envoy-upstream-service-time (router.cc onUpstreamHeaders:
// milliseconds from the downstream request's end to the upstream response headers; not sent
// with suppress_envoy_headers) is read through the response headers map (HeadersWrapper).
export const P_BACKEND_LATENCY = path2("response", "backend_latency");
export const P_UPSTREAM_SERVICE_TIME = path3("response", "headers", "x-envoy-upstream-service-time");
export const P_HOST = path2("request", "host"); // the :authority as requested
export const P_PROTOCOL = path2("request", "protocol"); // "HTTP/1.1", "HTTP/2", ...
export const P_UPSTREAM = path2("upstream", "address"); // "ip:port" of the upstream host
export const P_DESTINATION = path2("destination", "address"); // original downstream destination
// Connection attributes (expr/context.h ConnectionWrapper): the SNI the tls_inspector read.
export const P_SNI = path2("connection", "requested_server_name");

// Node metadata keys Istio's injector sets (pkg/model/proxy metadata: WORKLOAD_NAME, NAMESPACE, NAME, NODE_NAME, MESH_ID).
export class NodeKey {
  xds: ArrayBuffer;
  legacy: ArrayBuffer;
  constructor(key: string) {
    this.xds = path4("xds", "node", "metadata", key);
    this.legacy = path3("node", "metadata", key);
  }
}
export const K_WORKLOAD = new NodeKey("WORKLOAD_NAME");
export const K_NAMESPACE = new NodeKey("NAMESPACE");
export const K_POD = new NodeKey("NAME");
export const K_NODE = new NodeKey("NODE_NAME");
export const K_MESH = new NodeKey("MESH_ID");

/** Node metadata value: `xds.node.metadata.KEY` (Envoy ≥ 1.33); `node.metadata.KEY` only where the first is absent. */
export function nodeMetadata(k: NodeKey): string {
  const v = propString(k.xds);
  if (v != "") return v;
  return propString(k.legacy);
}

// Network-filter entry points (ABI 0.2.x), which proxy-runtime 0.1.8 does not export: without
// them Envoy skips the calls (context.cc onNetworkNewConnection: "if (!wasm_->on_new_connection_)
// return Continue") and the filter could not tell a TCP connection from an HTTP stream at log
// time. Signatures: proxy-wasm spec ABI 0.2.1 "TCP/UDP/QUIC stream (L4) extensions".
import { getContext } from "@solo-io/proxy-runtime/runtime";
import { MeshtuneStream } from "./filter";

export function proxy_on_new_connection(context_id: u32): u32 {
  return changetype<MeshtuneStream>(getContext(context_id)).onNewConnection();
}
export function proxy_on_downstream_data(context_id: u32, data_size: u32, end_of_stream: u32): u32 {
  return changetype<MeshtuneStream>(getContext(context_id)).onDownstreamData(data_size, end_of_stream != 0);
}
export function proxy_on_upstream_data(context_id: u32, data_size: u32, end_of_stream: u32): u32 {
  return changetype<MeshtuneStream>(getContext(context_id)).onUpstreamData(data_size, end_of_stream != 0);
}
export function proxy_on_downstream_connection_close(context_id: u32, peer_type: u32): void {}
export function proxy_on_upstream_connection_close(context_id: u32, peer_type: u32): void {}

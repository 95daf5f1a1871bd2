// Entry point: the proxy-wasm ABI exports, and the root context factory. Istio's WasmPlugin
// `pluginName` becomes the root id; "" covers hosts that do not set one.
export * from "@solo-io/proxy-runtime/proxy";
export * from "./network";
import { RootContext, registerRootContext } from "@solo-io/proxy-runtime";
import { MeshtuneRoot } from "./filter";

function create(context_id: u32): RootContext {
  return new MeshtuneRoot(context_id);
}
registerRootContext(create, "meshtune");
registerRootContext(create, "");

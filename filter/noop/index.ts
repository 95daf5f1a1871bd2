// Baseline for `make bench`: the same runtime with a filter that does nothing, so the
// bench measures meshtune's own cost per request.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext } from "@solo-io/proxy-runtime";

class NoopRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Context(context_id, this);
  }
  onConfigure(configuration_size: u32): bool {
    return true;
  }
}
function create(context_id: u32): RootContext {
  return new NoopRoot(context_id);
}
registerRootContext(create, "meshtune");
registerRootContext(create, "");

// One watched resource: client-node's informer, restarted after errors, with a promise that
// resolves on its first successful list. The informer's own start() resolves even when its list
// failed (it reports that as an error event), so readiness tracks the first list instead.
// List items carry no kind (apimachinery encodes a List's items bare; only watch events name
// it), so handlers that tell objects apart by kind get it set here.
// A watch can stall silently (a half-open connection behind a load balancer: no error, no
// events). Like client-go's reflector, which ends each watch after a random 5-10 min
// (tools/cache/reflector.go minWatchTimeout), the informer is restarted every `relistMs`
// (jittered): a fresh list replaces the cache and reports what changed meanwhile.
import { makeInformer, type KubeConfig, type KubernetesObject, type Informer } from "@kubernetes/client-node";
import type { Logger } from "../log.js";

export type WatchEvent = "add" | "update" | "delete";

export function watchResource<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<{ items: T[] }>,
  on: (type: WatchEvent, o: T) => void,
  log: Logger,
  stopped: () => boolean,
  kind?: string,
  relistMs = 300_000,
): { informer: Informer<T>; synced: Promise<void> } {
  let synced!: () => void;
  const firstList = new Promise<void>((r) => (synced = r));
  const listed = async () => {
    const l = await list();
    synced();
    return l;
  };
  const inf = makeInformer<T>(kc, path, listed as never);
  const stamp = (o: T): T => (kind && o.kind !== kind ? { ...o, kind } : o);
  inf.on("add", (o) => on("add", stamp(o)));
  inf.on("update", (o) => on("update", stamp(o)));
  inf.on("delete", (o) => on("delete", stamp(o)));
  inf.on("error", (e) => {
    if (stopped()) return;
    log("warn", "watch error; restarting", { path, error: String((e as Error)?.message ?? e) });
    setTimeout(() => {
      if (!stopped()) inf.start().catch(() => {});
    }, 1000);
  });
  const relist = () => {
    const t = setTimeout(
      () => {
        if (stopped()) return;
        // A full list, not a re-watch from the last resourceVersion: client-node's ListWatch lists
        // only when it holds no resourceVersion (cache.js doneHandler), and a watch that stalled
        // once may stall again; the list's diff reports what changed meanwhile.
        (inf as unknown as { resourceVersion: string }).resourceVersion = "";
        inf
          .stop()
          .then(() => inf.start())
          .catch(() => {}) // an error event restarts it
          .finally(relist);
      },
      relistMs * (0.8 + Math.random() * 0.4),
    );
    t.unref();
  };
  relist();
  return { informer: inf, synced: inf.start().then(() => firstList) };
}

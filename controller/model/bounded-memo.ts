// A pure function of a string, memoised: names (clusters, hosts) recur on nearly every log line
// and in every Sidecar of a reconcile pass. At most `max` answers are kept; when full, all go
// (no eviction order to maintain on a hot path). `f` must never return undefined.
export function boundedMemo<T>(f: (s: string) => T, max = 50_000): (s: string) => T {
  const memo = new Map<string, T>();
  return (s) => {
    let r = memo.get(s);
    if (r !== undefined) return r;
    r = f(s);
    if (memo.size >= max) memo.clear();
    memo.set(s, r);
    return r;
  };
}

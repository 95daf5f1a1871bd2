// `recommend` runs under a fixed heap: V8 otherwise lets garbage grow the heap to hundreds of MB
// before collecting (a 130 MB log of 400k unique pods peaked at 271 MB RSS with ~30 MB live).
// Node takes heap limits only at start-up, so the CLI starts itself again with them, once, the way
// a launcher script passes -Xmx to a JVM. The learner's own bound (SCRATCH_PODS) keeps the live
// set well under the limit; `make bench` measures the peak RSS.
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { constants } from "node:os";

/**
 * The old-space limit: 80 MB for the learner (its live set is ~25 MB at SCRATCH_PODS and
 * SCRATCH_EDGES, ~50 MB while it writes the Sidecars and the report), plus room
 * for a --catalog, whose parsed objects take about six times the file's size.
 */
export function recommendHeapMb(argv: string[]): number {
  let catalog = 0;
  argv.forEach((a, i) => {
    const f = a === "--catalog" ? argv[i + 1] : a.startsWith("--catalog=") ? a.slice(10) : null;
    try {
      if (f && f !== "-") catalog += statSync(f).size;
    } catch {
      // a missing file is the command's own error to report
    }
  });
  return Math.min(8192, 80 + Math.ceil((6 * catalog) / 2 ** 20));
}

/**
 * The exit code of the bounded re-run, or null when this process runs here. Bounded: access logs
 * (and a --catalog file) only, whose memory the learner bounds; a live cluster (--kubeconfig),
 * saved reports (--reports) and the dashboard (--html) hold what the cluster holds, and run here.
 */
export function rerunBounded(argv: string[]): number | null {
  const flags = [...process.execArgv, process.env.NODE_OPTIONS ?? ""].join(" ");
  if (argv[0] !== "recommend" || /max-old-space-size/.test(flags) || process.env.MESHTUNE_HEAP_BOUND) return null;
  if (argv.some((a) => /^--(kubeconfig|reports|html)(=|$)/.test(a))) return null;
  const heap = [`--max-old-space-size=${recommendHeapMb(argv)}`, "--max-semi-space-size=2"];
  const r = spawnSync(process.execPath, [...heap, ...process.execArgv, process.argv[1], ...argv], {
    stdio: "inherit",
    env: { ...process.env, MESHTUNE_HEAP_BOUND: "1" },
  });
  if (r.error) return null; // could not start: run here, unbounded
  if (r.signal) {
    // V8 aborts when the bound is too small for this input: say so, and how to lift it.
    if (r.signal === "SIGABRT")
      process.stderr.write(
        `meshtune: recommend ran out of its memory bound (${heap[0]}); rerun with NODE_OPTIONS=--max-old-space-size=1024\n`,
      );
    return 128 + (constants.signals[r.signal] ?? 1);
  }
  return r.status ?? 1;
}

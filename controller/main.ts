#!/usr/bin/env node
// Entry. The CLI itself is loaded only where it runs: not in the launcher that re-runs
// `recommend` under a heap bound (heap-bound.ts), nor in a learner shard's worker thread
// (accesslog/parallel.ts), both of which would otherwise pay for loading every command first.
import { fileURLToPath } from "node:url";
import { isMainThread, workerData } from "node:worker_threads";
import { rerunBounded } from "./heap-bound.js";
import { setCliEntry } from "./cli-entry.js";

if (!isMainThread && (workerData as { meshtuneShard?: unknown } | null)?.meshtuneShard) {
  void import("./accesslog/parallel.js").then((m) => m.runShardWorker());
} else {
  setCliEntry(fileURLToPath(import.meta.url));
  const argv = process.argv.slice(2);
  const bounded = rerunBounded(argv);
  if (bounded !== null) process.exitCode = bounded;
  else
    void import("./cli.js").then(({ main }) =>
      main(argv).then((code) => {
        process.exitCode = code;
      }),
    );
}

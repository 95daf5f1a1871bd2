#!/usr/bin/env node
import { fileURLToPath } from "node:url";
import { isMainThread, workerData } from "node:worker_threads";
import { main } from "./cli.js";
import { rerunBounded } from "./heap-bound.js";
import { setCliEntry } from "./cli-entry.js";

if (!isMainThread && (workerData as { meshtuneShard?: unknown } | null)?.meshtuneShard) {
  // A learner shard (accesslog/parallel.ts), started on this script: no CLI here.
  void import("./accesslog/parallel.js").then((m) => m.runShardWorker());
} else {
  setCliEntry(fileURLToPath(import.meta.url));
  const argv = process.argv.slice(2);
  const bounded = rerunBounded(argv);
  if (bounded !== null) process.exitCode = bounded;
  else
    main(argv).then((code) => {
      process.exitCode = code;
    });
}

// Issue 23 item 15: the offline learner's memory is bounded whatever the number of pods. A log
// of 250k lines from 250k unique pods (the worst case: every line a new workload) goes through
// `meshtune recommend` as a user runs it; its peak RSS (GNU time, the whole process tree's
// largest) stays ≤ 150 MB, the output is one parseable document, and what was evicted is counted
// in the report. (make bench runs the same on 1 GB.)
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { CLI } from "../helpers/cli.js";

const line = (i: number) =>
  `[pod/w${i}-${((i * 2654435761) >>> 0).toString(16).padStart(8, "0").slice(0, 8)}9-x${(i % 99991).toString(36).padStart(4, "0")}/istio-proxy] [2026-11-20T10:00:06.830Z] "GET /api HTTP/1.1" 200 - via_upstream - "-" 0 2864 15 14 "-" "curl/8.5.0" "9c59b654-b743-4717-12be-7f0c846c58e6" "svc-${i % 500}:8080" "10.244.1.9:8080" outbound|8080||svc-${i % 500}.shop.svc.cluster.local 10.244.1.50:52525 10.96.0.7:8080 10.244.1.50:55059 - default\n`;

test("item 15: 250k unique pods through recommend: peak RSS ≤ 150 MB, one JSON document, evictions counted", async () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-unique-"));
  try {
    const log = join(dir, "unique.log");
    const w = createWriteStream(log);
    for (let i = 0; i < 250_000; i++) if (!w.write(line(i))) await once(w, "drain");
    w.end();
    await once(w, "finish");
    const r = spawnSync(
      "/usr/bin/time",
      [
        "-f",
        "maxrss_kb=%M",
        process.execPath,
        CLI,
        "recommend",
        "--access-log",
        log,
        "--default-namespace",
        "shop",
        "-o",
        "json",
      ],
      { encoding: "utf8", maxBuffer: 64 << 20 },
    );
    assert.is(r.status, 0, r.stderr.slice(-2000));
    const kb = Number(/maxrss_kb=(\d+)/.exec(r.stderr)?.[1]);
    console.log(`  peak RSS ${(kb / 1024).toFixed(0)} MB`);
    assert.ok(kb > 0 && kb <= 150 * 1024, `peak RSS ${kb} kB`);
    const out = JSON.parse(r.stdout);
    assert.is(out.kind, "List");
    assert.ok(out.items.length > 1000 && out.items.length <= 8_000, String(out.items.length));
    const evicted = /LIMITS HIT, data was dropped: .*evicted \(least recently seen\) ([\d,]+) workloads\/pods/.exec(
      r.stderr,
    );
    assert.ok(evicted, r.stderr.slice(0, 2000));
    assert.ok(Number(evicted[1].replace(/,/g, "")) + out.items.length >= 240_000, evicted[0]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

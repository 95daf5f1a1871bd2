// Issue 23, "memory bounded on every path": the real controller process under the manifest's
// heap cap (--max-old-space-size=320, manifests/controller.yaml), flooded to its graph cap, then
// read through every graph-derived endpoint. Each scenario prints the process's peak RSS
// (VmHWM). Item numbers refer to issue 23.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeApiServer } from "../k8s/fake-apiserver.js";
import { spawnController } from "../helpers/controller-proc.js";
import { report } from "../fixtures/report.js";

const peakMiB = (pid: number) =>
  Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;

test("item 12: after a 2M-edge flood, /recommendations and /api/dashboard answer bounded, and the process lives", async () => {
  const fake = await new FakeApiServer().start();
  const dir = mkdtempSync(join(tmpdir(), "meshtune-mem-"));
  writeFileSync(join(dir, "kubeconfig"), fake.kubeconfig());
  const c = spawnController(
    join(dir, "kubeconfig"),
    ["--insecure-collector", "--mode", "recommend", "--report-rate", "100000"],
    ["--max-old-space-size=320"],
  );
  try {
    assert.is(await c.ready(), 200, c.stderr());
    let accepted = 0,
      partial = 0;
    for (let r = 0; r < 400; r++) {
      const body = JSON.stringify(
        report({
          proxy: { workload: `w${r}`, namespace: `flood${r % 20}`, pod: `w${r}-x` },
          unknown: [],
          edges: Array.from({ length: 5000 }, (_, i) => ({
            dir: "outbound",
            cluster: `outbound|80||h${r}-${i}.flood${r % 20}.svc.cluster.local`,
            count: 1,
            latency: { bounds: "meshtune-v1", buckets: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], sumUs: 9 },
          })),
        }),
      );
      const res = await fetch(c.url("/v1/reports"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      await res.text();
      if (res.status === 202) accepted++;
      else if (res.status === 507) partial++;
      else assert.unreachable(`report ${r}: ${res.status}`);
    }
    console.log(
      `  flood: ${accepted} accepted, ${partial} cut by caps (507); peak RSS ${peakMiB(c.p.pid!).toFixed(0)} MiB`,
    );
    for (const path of [
      "/recommendations",
      "/recommendations?limit=1000",
      "/api/dashboard",
      "/api/diagnose?since=1h",
      "/metrics",
    ]) {
      const r = await fetch(c.url(path));
      const text = await r.text();
      assert.is(r.status, 200, `${path}: ${text.slice(0, 200)}`);
      assert.ok(text.length < 64 << 20, `${path}: ${text.length} bytes`);
      console.log(`  ${path}: ${(text.length / 1e6).toFixed(1)} MB; peak RSS ${peakMiB(c.p.pid!).toFixed(0)} MiB`);
    }
    const rec = (await (await fetch(c.url("/recommendations?limit=5"))).json()) as {
      workloads: unknown[];
      total: number;
      continue: string | null;
      truncated: unknown;
    };
    assert.is(rec.workloads.length <= 5, true);
    assert.ok(rec.truncated, "the read says what it left out");
    assert.is(c.p.exitCode, null, "the controller is still running");
    const m = await (await fetch(c.url("/metrics"))).text();
    assert.not.match(m, /client="|server="|flood\d+\//, "the open /metrics names no workload or host (item 14)");
  } finally {
    c.p.kill("SIGKILL");
    await fake.stop();
  }
});

test.run();

// make bench (access logs): throughput and peak RSS of `meshtune recommend` on a generated
// >= 1 GB kubectl --prefix log, against `wc -l` on the same file in the same run.
import { createWriteStream, existsSync, statSync, readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { once } from "node:events";

const ROOT = new URL("..", import.meta.url).pathname;
const FILE = process.env.BENCH_LOG ?? "/tmp/meshtune-bench-access.log";
const TARGET = Number(process.env.BENCH_BYTES ?? 1.05e9);

async function generate() {
  if (existsSync(FILE) && statSync(FILE).size >= TARGET) return;
  const sample = readFileSync(join(ROOT, "samples/bookinfo/access.log"), "utf8")
    .split("\n")
    .filter((l) => l.includes("] [") || l.includes("] {"));
  // 200 distinct pods per sample pod name keeps the graph realistic (many workloads, bounded edges).
  const block = [];
  for (let k = 0; k < 40; k++)
    for (const l of sample)
      block.push(
        l.replace(
          /-([a-z0-9]{5})\/istio-proxy\]/,
          `-${(k * 7919).toString(36).padStart(5, "x").slice(-5)}/istio-proxy]`,
        ),
      );
  const buf = Buffer.from(block.join("\n") + "\n");
  const out = createWriteStream(FILE);
  for (let written = 0; written < TARGET; written += buf.length) if (!out.write(buf)) await once(out, "drain");
  out.end();
  await once(out, "finish");
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let hwm = 0,
      stdout = "",
      stderr = "";
    const poll = setInterval(() => {
      try {
        hwm = Math.max(hwm, Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${p.pid}/status`, "utf8"))?.[1] ?? 0));
      } catch {}
    }, 20);
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", reject);
    p.on("exit", (code) => {
      clearInterval(poll);
      if (code !== 0) return reject(new Error(`${cmd} exited ${code}: ${stderr.slice(0, 300)}`));
      resolve({ sec: Number(process.hrtime.bigint() - t0) / 1e9, rssMB: hwm / 1024, stdout, stderr });
    });
  });
}

await generate();
const bytes = statSync(FILE).size;
const wc = await run("wc", ["-l", FILE]);
const lines = Number(wc.stdout.trim().split(/\s+/)[0]);
const mt = await run(process.execPath, [
  join(ROOT, "build/meshtune.mjs"),
  "recommend",
  "--access-log",
  FILE,
  "-o",
  "json",
]);
const lps = lines / mt.sec,
  mbps = bytes / 1e6 / mt.sec;
console.log(`access-log bench: ${(bytes / 1e9).toFixed(2)} GB, ${lines.toLocaleString()} lines`);
console.log(
  `  baseline wc -l : ${wc.sec.toFixed(2)} s  ${(lines / wc.sec / 1e6).toFixed(1)} M lines/s  ${(bytes / 1e6 / wc.sec).toFixed(0)} MB/s`,
);
console.log(
  `  meshtune       : ${mt.sec.toFixed(2)} s  ${Math.round(lps).toLocaleString()} lines/s  ${mbps.toFixed(0)} MB/s  peak RSS ${mt.rssMB.toFixed(0)} MB`,
);
console.log(
  `  ratio meshtune/wc time: ${(mt.sec / wc.sec).toFixed(1)}x   target >= 300k lines/s: ${lps >= 3e5 ? "met" : "MISSED"}; RSS < 150 MB: ${mt.rssMB < 150 ? "met" : "MISSED"}`,
);

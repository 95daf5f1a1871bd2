// Parallel learning (controller/accesslog/parallel.ts) through the CLI as shipped: the same
// inputs learned in one thread and in three shards (worker threads on the CLI's own script) must
// give the same Sidecars and the same report (pods listed in another order). The inputs mix what
// decides a shard: prefixed lines of many pods, two ztunnel pods naming the same ambient pod
// (so two shards hold it), an over-long line, an unprefixed line, an app container's line, a
// second file with CRLF line ends and no final newline.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, ROOT } from "./helpers/cli.js";
import { learnParallel, shardCount } from "../controller/accesslog/parallel.js";
import { Graph } from "../controller/model/graph.js";
import { fileChunks } from "../controller/accesslog/lines.js";
import { shardOfName } from "../controller/accesslog/learner.js";

const dir = mkdtempSync(join(tmpdir(), "meshtune-parallel-"));
const sample = readFileSync(join(ROOT, "samples", "bookinfo", "access.log"), "utf8")
  .split("\n")
  .filter(Boolean);
const zt = (pod: string, t: string, dir_: string) =>
  `[pod/${pod}/istio-proxy] ${t}\tinfo\taccess\tconnection complete\tsrc.addr=10.244.1.5:52332 src.workload=sleep-7bf8c9648f-2lcgn src.namespace=demo dst.addr=10.244.2.7:15008 dst.hbone_addr=10.244.2.7:8080 dst.service=httpbin.demo.svc.cluster.local dst.workload=httpbin-5d8f7c9b4-x9q2z dst.namespace=demo direction="${dir_}" bytes_sent=120 bytes_recv=300 duration="12ms"`;
const a = [...sample];
a.splice(5, 0, zt("ztunnel-aaaaa", "2026-11-20T10:00:06.830000Z", "outbound"));
a.splice(9, 0, zt("ztunnel-bbbbb", "2026-11-20T10:00:06.842000Z", "inbound"));
a.splice(12, 0, "x".repeat(70_000), "an unprefixed line", "[pod/productpage-v1-6987489c74-6fgz8/productpage] app log");
// A ztunnel naming a pod that also has its own sidecar lines: whichever shard holds the ztunnel's
// lines, the pod must be learned once, where its own lines are (and with kubelet timestamps).
// ztunnel-fffff hashes to another shard than ratings-v1-… for both 2 and 3 shards.
const named = (pod: string, t: string) =>
  `[pod/ztunnel-fffff/istio-proxy] 2026-11-20T10:00:07.000000001Z ${t}\tinfo\taccess\tconnection complete\tsrc.addr=10.244.1.5:52332 src.workload=sleep-7bf8c9648f-2lcgn src.namespace=demo dst.addr=10.244.2.9:15008 dst.hbone_addr=10.244.2.9:9080 dst.service=ratings.bookinfo.svc.cluster.local dst.workload=${pod} dst.namespace=demo direction="inbound" bytes_sent=1 bytes_recv=1 duration="2ms"`;
for (let i = 0; i < 3; i++) a.splice(20 + i, 0, named("ratings-v1-7dc98c7588-zj5cz", `2026-11-20T10:00:07.00${i}000Z`));
writeFileSync(join(dir, "a.log"), a.join("\n") + "\n");
writeFileSync(
  join(dir, "b.log"),
  sample
    .filter((_, i) => i % 2 === 0)
    .map((l) => l.replace(/-([a-z0-9]{5})\/istio-proxy\]/, "-y$1/istio-proxy]"))
    .join("\r\n"),
);

// A ztunnel log without kubectl's prefix (plain `kubectl logs ztunnel-x`): every line belongs to
// shard 0, yet names pods of every shard; one line space-separated rather than tab-separated.
const zline = (pod: string, sep: string) =>
  ["2026-11-20T10:00:08.000000Z", "info", "access", "connection complete"].join(sep) +
  `${sep}src.addr=10.244.1.5:52332 src.workload=${pod} src.namespace=demo dst.addr=10.244.2.7:15008 dst.hbone_addr=10.244.2.7:8080 dst.service=httpbin.demo.svc.cluster.local dst.workload=httpbin-5d8f7c9b4-x9q2z dst.namespace=demo direction="outbound" bytes_sent=1 bytes_recv=1 duration="1ms"`;
writeFileSync(
  join(dir, "c.log"),
  [
    ...Array.from({ length: 12 }, (_, i) => zline(`client${i}-7bf8c9648f-2lcgn`, "\t")),
    zline("spaced-6d5c4b3a2-xyz12", " "),
  ].join("\n") + "\n",
);

function recommend(env: Record<string, string>, catalog = true) {
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      "recommend",
      ...["--access-log", join(dir, "a.log"), "--access-log", join(dir, "b.log"), "--access-log", join(dir, "c.log")],
      ...["-o", "json"],
      ...(catalog ? ["--catalog", join(ROOT, "samples", "bookinfo", "catalog.json")] : []),
    ],
    { env: { ...process.env, ...env }, maxBuffer: 64 << 20 },
  );
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}
/** The report with each listed item set sorted (shards list pods in shard order). */
const normal = (report: string) =>
  report
    .split("\n")
    .filter((l) => !/^meshtune: learning the access logs in/.test(l))
    .map((l) => {
      const i = l.indexOf(": ");
      return i < 0
        ? l
        : l.slice(0, i + 2) +
            l
              .slice(i + 2)
              .split(", ")
              .sort()
              .join(", ");
    })
    .join("\n");

for (const catalog of [true, false])
  test(`one thread, two and three shards learn the same Sidecars and report the same counts (${catalog ? "with" : "without"} a pod catalog)`, () => {
    const one = recommend({ MESHTUNE_LEARN_SHARDS: "1" }, catalog);
    assert.is(one.code, 0, one.stderr);
    assert.not.match(one.stderr, /shards/);
    assert.ok(JSON.parse(one.stdout).items.length >= 5, "the sample taught Sidecars");
    assert.match(one.stderr, /too-long 1/);
    assert.match(one.stderr, /ambient skipped: demo\/sleep/);
    assert.match(one.stderr, /ambient skipped: .*demo\/client11/, "unprefixed ztunnel lines teach their pods");
    assert.match(
      one.stderr,
      /ambient skipped: .*demo\/spaced/,
      "a space-separated ztunnel line keeps its own timestamp",
    );
    for (const n of ["2", "3"]) {
      const many = recommend({ MESHTUNE_LEARN_SHARDS: n, MESHTUNE_PARALLEL_MIN_BYTES: "0" }, catalog);
      assert.is(many.code, 0, many.stderr);
      assert.match(
        many.stderr,
        new RegExp(`^meshtune: learning the access logs in ${n} shards, one thread each$`, "m"),
      );
      assert.is(many.stdout, one.stdout, `${n} shards`);
      assert.is(normal(many.stderr), normal(one.stderr), `${n} shards`);
    }
  });

test("only plain files big enough are split: stdin, gzip and small inputs stay on one thread", () => {
  const gz = join(dir, "a.log.gz");
  writeFileSync(gz, Buffer.from([0x1f, 0x8b, 0, 0]));
  assert.is(shardCount([join(dir, "a.log")], 0, 2), 2);
  assert.is(shardCount([join(dir, "a.log")], 1 << 30, 2), 1, "below the size");
  assert.is(shardCount([join(dir, "a.log"), "-"], 0, 2), 1, "stdin");
  assert.is(shardCount([join(dir, "a.log"), gz], 0, 2), 1, "gzip");
  assert.is(shardCount([join(dir, "missing.log")], 0, 2), 1, "the serial path names the missing file");
});

test("every shard reads the bytes the file had when the run began, however it grows", async () => {
  const f = join(dir, "growing.log");
  writeFileSync(f, "0123456789abcdef");
  const got: Buffer[] = [];
  for await (const c of fileChunks(f, 4, 10)) got.push(Buffer.from(c));
  assert.is(Buffer.concat(got).toString(), "0123456789");
});

test("no choice of pod names crowds one shard, whatever the seed: the hash is mixed before it is reduced", () => {
  // FNV alone keeps the low bits of the seed and of each character apart: these names all shared
  // a bucket mod 2 and mod 4 for every seed before the mix.
  const names: string[] = [];
  for (const a of "aeimquy") for (const b of "aeimquy") names.push(`p${a}${b}`);
  for (let seed = 1; seed <= 20; seed++)
    for (const count of [2, 4]) {
      const used = new Set(names.map((n) => shardOfName(n, count, seed * 2654435761)));
      assert.is(used.size, count, `seed ${seed}, ${count} shards`);
    }
});

test("a shard's read error names its file; every thread settles first", async () => {
  const missing = join(dir, "gone.log");
  const err = await learnParallel(
    [join(dir, "a.log"), missing],
    { defaultNamespace: "default", clusterDomain: "cluster.local" },
    new Graph(),
    2,
    CLI,
  ).then(
    () => null,
    (e: Error & { input?: string }) => e,
  );
  assert.ok(err, "rejected");
  assert.is(err!.input, missing);
  assert.match(err!.message, /ENOENT/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();

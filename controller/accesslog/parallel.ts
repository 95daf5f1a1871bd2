// Large access logs learned on every core. Each shard reads the whole input (the page cache
// serves the second read) and learns only its own lines: those of the pods that hash to it
// (learner.ts shardOf). All of a pod's lines, and so all its namespace votes, land in one shard,
// so a pod is placed the way one learner would place it; the shards' workloads then merge into
// one graph (Graph.mergeNode adds their stats). Shard 0 runs on this thread, the others on
// worker threads started on the CLI's own script. Only plain files large enough to repay a
// thread are split: a gzip stream or stdin is read once, on this thread. What changes with
// shards: each holds its share of the learner's memory bound, so eviction, when the bound is
// reached, picks the idlest pods per shard rather than overall.
import { Worker, parentPort, workerData } from "node:worker_threads";
import { availableParallelism } from "node:os";
import { openSync, readSync, closeSync, statSync } from "node:fs";
import { randomInt } from "node:crypto";
import { AccessLogLearner, preferSidecars, shardOfName, type LearnOptions, type Placement } from "./learner.js";
import { fileChunks, isGzip } from "./lines.js";
import { Graph, type DropReason, type WorkloadNode } from "../model/graph.js";
import { PodCatalog, type PodFacts } from "../sidecar/pod-catalog.js";
import type { InputSummary } from "../report.js";

/** Below this many bytes in all, a second thread costs more than it saves. */
export const PARALLEL_MIN_BYTES = 64 * 2 ** 20;

type Opts = Pick<LearnOptions, "workload" | "defaultNamespace" | "clusterDomain">;
interface ShardJob {
  paths: string[];
  opts: Opts & { catalogPods?: number };
  pods: [string, PodFacts[]][] | null;
  shard: { from: number; to: number; count: number; seed: number };
  /** Each file's size when the run began: every shard reads the same bytes, however it grows. */
  sizes: number[];
}
interface ShardResult {
  inputs: InputSummary[];
  placements: Placement[];
  nodes: WorkloadNode[];
  dropped: Record<DropReason, number>;
  evicted: Graph["evicted"];
}

/** Every file through one learner, each file's counts apart (a read error names its file). */
export async function learnFiles(
  l: AccessLogLearner,
  paths: string[],
  open: (p: string) => AsyncIterable<Buffer>,
): Promise<InputSummary[]> {
  const inputs: InputSummary[] = [];
  for (const p of paths) {
    const before = { lines: l.lines, records: l.records, bytes: l.bytes, skipped: { ...l.skipped } };
    try {
      await l.learnStream(open(p));
    } catch (e) {
      throw Object.assign(e as Error, { input: p });
    }
    const skipped: Record<string, number> = {};
    for (const [k, v] of Object.entries(l.skipped))
      skipped[k] = v - (before.skipped[k as keyof typeof before.skipped] ?? 0);
    inputs.push({
      name: p === "-" ? "stdin" : p,
      lines: l.lines - before.lines,
      records: l.records - before.records,
      bytes: l.bytes - before.bytes,
      skipped,
    });
  }
  return inputs;
}

/**
 * How many shards these inputs are worth: 1 unless all are plain files of `minBytes` together;
 * then one per core (at most 4), or `shards` when given.
 */
export function shardCount(paths: string[], minBytes = PARALLEL_MIN_BYTES, shards?: number): number {
  const cores = shards ?? Math.min(availableParallelism(), 4);
  if (cores < 2 || paths.some((p) => p === "-")) return 1;
  let total = 0;
  for (const p of paths) {
    let fd: number | null = null;
    try {
      const st = statSync(p);
      if (!st.isFile()) return 1;
      fd = openSync(p, "r");
      const head = Buffer.alloc(2);
      readSync(fd, head, 0, 2, 0);
      if (isGzip(head)) return 1; // gzip: one decompression, on one thread
      total += st.size;
    } catch {
      return 1; // the serial path reports the error, naming the file
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }
  return total >= minBytes ? cores : 1;
}

function learnShard(job: ShardJob, pods: PodCatalog | undefined, into: Graph, progress: Progress = (input) => input) {
  const l = new AccessLogLearner({ ...job.opts, pods, shard: job.shard });
  const open = (p: string) => progress(fileChunks(p, 1 << 20, job.sizes[job.paths.indexOf(p)]), p);
  return learnFiles(l, job.paths, open).then((inputs) => ({ inputs, ...l.finish(into) }));
}
type Progress = (input: AsyncIterable<Buffer>, name: string) => AsyncIterable<Buffer>;

/** The worker thread's side: learn its shard, post the result (structured clone), exit. */
export function runShardWorker(): void {
  const job = (workerData as { meshtuneShard: ShardJob }).meshtuneShard;
  const graph = new Graph();
  learnShard(job, job.pods ? PodCatalog.fromFacts(job.pods) : undefined, graph).then(
    (r) => {
      const out: ShardResult = {
        inputs: r.inputs,
        placements: r.placements,
        nodes: [...graph.nodes.values()],
        dropped: graph.dropped,
        evicted: graph.evicted,
      };
      parentPort!.postMessage({ ok: out });
    },
    (e: Error & { input?: string }) => parentPort!.postMessage({ error: e.message, input: e.input }),
  );
}

function startWorker(script: string, job: ShardJob, catalogBytes: number): Promise<ShardResult> {
  return new Promise((resolve, reject) => {
    // Its share of the learner's bound, like this thread's (heap-bound.ts sizes the main one),
    // plus room for its part of the pod catalog (parsed objects take a few times their JSON).
    const w = new Worker(script, {
      workerData: { meshtuneShard: job },
      resourceLimits: {
        maxYoungGenerationSizeMb: 16,
        maxOldGenerationSizeMb: 32 + Math.ceil((4 * catalogBytes) / 2 ** 20),
      },
      stdout: false,
      stderr: false,
    });
    let settled = false;
    w.once("message", (m: { ok?: ShardResult; error?: string; input?: string }) => {
      settled = true;
      if (m.ok) resolve(m.ok);
      else reject(Object.assign(new Error(m.error), { input: m.input }));
    });
    w.once("error", (e) => {
      if (!settled) reject(e);
    });
    w.once("exit", (code) => {
      if (!settled) reject(new Error(`learner shard ${job.shard.from} exited with code ${code}`));
    });
  });
}

/**
 * Learn `paths` in `count` shards (shard 0 here, the rest on worker threads of `script`) into
 * `graph`; the same inputs and placements one learner would report. `progress` wraps shard 0's
 * reads (it reads all of every file, so its progress is the whole run's).
 */
export async function learnParallel(
  paths: string[],
  opts: Opts & { pods?: PodCatalog },
  graph: Graph,
  count: number,
  script: string,
  progress?: Progress,
): Promise<{ inputs: InputSummary[]; placements: Placement[] }> {
  const { pods, ...plain } = opts;
  const seed = randomInt(2 ** 31);
  const sizes = paths.map((p) => {
    try {
      return statSync(p).size;
    } catch (e) {
      throw Object.assign(e as Error, { input: p });
    }
  });
  // A worker looks up only the pods of its own bucket: it gets just those of the catalog.
  const facts = pods?.facts() ?? null;
  const job = (index: number): ShardJob => ({
    paths,
    sizes,
    opts: { ...plain, catalogPods: pods?.size },
    pods: facts && index > 0 ? facts.filter(([name]) => shardOfName(name, count, seed) === index) : null,
    shard: { from: index, to: index + 1, count, seed },
  });
  const workers = Array.from({ length: count - 1 }, (_, i) => {
    const j = job(i + 1);
    return startWorker(script, j, j.pods ? JSON.stringify(j.pods).length : 0);
  });
  // Settle every shard before deciding: a failed one must not leave the others' threads running.
  const [mine, ...theirs] = await Promise.allSettled([learnShard(job(0), pods, graph, progress), ...workers]);
  for (const r of [mine, ...theirs]) if (r.status === "rejected") throw r.reason;
  const own = (mine as PromiseFulfilledResult<Awaited<ReturnType<typeof learnShard>>>).value;
  const inputs = own.inputs.map((i) => ({ ...i, skipped: { ...i.skipped } }));
  // Every pod is learned by exactly one shard (its own lines and the ztunnel lines naming it):
  // the shards' placements never overlap.
  const placements = [...own.placements];
  for (const r of theirs) {
    const s = (r as PromiseFulfilledResult<ShardResult>).value;
    for (const n of s.nodes) graph.mergeNode(n, n.namespace, n.name);
    graph.addLosses(s);
    s.inputs.forEach((i, k) => {
      const t = inputs[k];
      t.lines += i.lines;
      t.records += i.records;
      t.bytes += i.bytes;
      for (const [reason, v] of Object.entries(i.skipped)) t.skipped[reason] = (t.skipped[reason] ?? 0) + v;
    });
    placements.push(...s.placements);
  }
  preferSidecars(graph, placements);
  return { inputs, placements };
}

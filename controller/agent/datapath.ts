// The agent's handle on the node datapath: `meshtune-bpf load` once (idempotent: an agent restart
// re-adopts the pinned programs and maps, so established and new connections never notice), then
// one long-lived `meshtune-bpf pods` process speaking its line protocol (bpf/pods.c).
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { loadArgs, loaderError, loaderPath, runLoader, type DatapathFlags } from "../commands/bpf.js";

/** Load (or find loaded) the datapath on `cgroup`; the loader validates every flag. */
export function loadDatapath(cgroup: string, f: DatapathFlags): Record<string, unknown> {
  const r = runLoader(["load", ...loadArgs(cgroup, f)]);
  if (r.code !== 0) throw loaderError(r);
  return JSON.parse(r.stdout);
}

export type Reply = { ok: true; [k: string]: unknown } | { ok: false; error: string };

export class PodMaps {
  private proc: ChildProcessWithoutNullStreams | null = null;
  private waiting: ((r: Reply) => void)[] = [];

  private start(): ChildProcessWithoutNullStreams {
    const p = spawn(loaderPath(), ["pods"], { stdio: ["pipe", "pipe", "pipe"] });
    createInterface({ input: p.stdout }).on("line", (l) => {
      let r: Reply;
      try {
        r = JSON.parse(l);
      } catch {
        r = { ok: false, error: `unparsable loader reply: ${l.slice(0, 200)}` };
      }
      this.waiting.shift()?.(r);
    });
    p.on("exit", () => {
      if (this.proc === p) this.proc = null;
      for (const w of this.waiting.splice(0)) w({ ok: false, error: "loader 'pods' process exited" });
    });
    // A loader that cannot start (missing, not executable) answers every waiting command with
    // the reason instead of leaving it pending forever.
    p.on("error", (e) => {
      if (this.proc === p) this.proc = null;
      for (const w of this.waiting.splice(0)) w({ ok: false, error: `loader 'pods': ${e.message}` });
    });
    return p;
  }

  /** One command, one reply; the helper is (re)started on demand. */
  send(line: string): Promise<Reply> {
    if (/[\n\r]/.test(line)) return Promise.resolve({ ok: false, error: "newline in command" });
    const p = (this.proc ??= this.start());
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      p.stdin.write(line + "\n");
    });
  }

  close(): void {
    this.proc?.stdin.end();
    this.proc = null;
  }
}

// The agent's handle on the node datapath: `meshtune-bpf load` once (idempotent: an agent restart
// re-adopts the pinned programs and maps, so established and new connections never notice), then
// one long-lived `meshtune-bpf pods` process speaking its line protocol (bpf/pods.c).
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { loaderPath, runLoader } from "../commands/bpf.js";
import { UserError } from "../errors.js";

export interface LoadOptions { cgroup: string; proxyPort: number; inboundPort: number; proxyUid: number; excludePorts: number[]; excludeCidrs: string[]; skbVerdict: string }

export function loadDatapath(o: LoadOptions): Record<string, unknown> {
  const args = ["load", "--cgroup", o.cgroup, "--proxy-port", String(o.proxyPort), "--inbound-port", String(o.inboundPort), "--proxy-uid", String(o.proxyUid), "--skb-verdict", o.skbVerdict];
  for (const p of o.excludePorts) args.push("--exclude-port", String(p));
  for (const c of o.excludeCidrs) args.push("--exclude-cidr", c);
  const r = runLoader(args);
  if (r.code !== 0) throw new UserError((r.stderr.trim().split("\n").pop() ?? "load failed").replace(/^meshtune-bpf: /, "bpf: "));
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
      try { r = JSON.parse(l); } catch { r = { ok: false, error: `unparsable loader reply: ${l.slice(0, 200)}` }; }
      this.waiting.shift()?.(r);
    });
    p.on("exit", () => {
      if (this.proc === p) this.proc = null;
      for (const w of this.waiting.splice(0)) w({ ok: false, error: "loader 'pods' process exited" });
    });
    p.on("error", () => {});
    return p;
  }

  /** One command, one reply; the helper is (re)started on demand. */
  send(line: string): Promise<Reply> {
    if (/[\n\r]/.test(line)) return Promise.resolve({ ok: false, error: "newline in command" });
    const p = (this.proc ??= this.start());
    return new Promise((resolve) => { this.waiting.push(resolve); p.stdin.write(line + "\n"); });
  }

  close(): void { this.proc?.stdin.end(); this.proc = null; }
}

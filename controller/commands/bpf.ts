// `meshtune bpf load|unload|status|probe`: a thin wrapper over the C loader (build/meshtune-bpf),
// which owns the libbpf skeleton, the feature probe and the pins under /sys/fs/bpf/meshtune.
import { spawnSync } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { UserError } from "../errors.js";

const loaderEnv = (name: string) => (name === "meshtune-bpf" ? "MESHTUNE_BPF_LOADER" : "MESHTUNE_TCPSTATS_LOADER");

export function loaderPath(name = "meshtune-bpf"): string {
  const env = process.env[loaderEnv(name)];
  if (env) return env;
  // Next to the CLI entry (build/meshtune.mjs → build/meshtune-bpf), through any npx/bin symlink.
  return join(dirname(realpathSync(process.argv[1])), name);
}

/** Run the datapath loader (or, by name, the TCP probes' loader meshtune-tcpstats) once. */
export function runLoader(args: string[], name = "meshtune-bpf"): { code: number; stdout: string; stderr: string } {
  const bin = loaderPath(name);
  if (!existsSync(bin)) throw new UserError(`BPF loader ${bin} not found: run 'make bpf' (or set ${loaderEnv(name)})`);
  const r = spawnSync(bin, args, { encoding: "utf8" });
  if (r.error) throw new UserError(`BPF loader ${bin}: ${r.error.message}`);
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** The loader's one-line error as ours. */
export function loaderError(r: { code: number; stderr: string }): UserError {
  return new UserError(
    (r.stderr.trim().split("\n").pop() ?? "")
      .replace(/^meshtune-bpf: /, "bpf: ")
      .replace(/^meshtune-tcpstats: /, "tcpstats: "),
    r.code === 2 ? 2 : 1,
  );
}

/** Pass the loader's JSON through; its one-line error becomes ours. */
export function bpfCommand(sub: string, args: string[]): void {
  const r = runLoader([sub, ...args]);
  process.stdout.write(r.stdout);
  if (r.code !== 0) throw loaderError(r);
}

/** The datapath flags `meshtune agent` and `meshtune bpf load` share (cli.ts datapathOptions). */
export interface DatapathFlags {
  proxyPort: string;
  inboundPort: string;
  proxyUid: string;
  excludePort: string[];
  excludeCidr: string[];
  skbVerdict: string;
}

/** `meshtune-bpf load` arguments for those flags. */
export function loadArgs(cgroup: string, f: DatapathFlags): string[] {
  return [
    "--cgroup",
    cgroup,
    "--proxy-port",
    f.proxyPort,
    "--inbound-port",
    f.inboundPort,
    "--proxy-uid",
    f.proxyUid,
    "--skb-verdict",
    f.skbVerdict,
    ...f.excludePort.flatMap((p) => ["--exclude-port", p]),
    ...f.excludeCidr.flatMap((c) => ["--exclude-cidr", c]),
  ];
}

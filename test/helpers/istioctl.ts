// `istioctl analyze` from the pinned istio.io/istio (build/istio-oracle/istioctl, `make oracle`),
// run as platform engineers run it in CI: files only (--use-kube=false) and every namespace (-A;
// without it only `default` is analysed and meshtune's namespaces would pass unseen).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./cli.js";

export const ISTIOCTL = join(ROOT, "build/istio-oracle/istioctl");

export interface AnalyzeMessage {
  code: string;
  level: string;
  origin: string;
  message: string;
}

/** Every analyzer message (Info and up) for these YAML/JSON streams, analysed together. */
export function istioctlAnalyze(files: Record<string, string>): AnalyzeMessage[] {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-analyze-"));
  try {
    const paths = Object.entries(files).map(([name, text]) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    });
    const r = spawnSync(
      ISTIOCTL,
      ["analyze", "--use-kube=false", "-A", "-o", "json", "--output-threshold", "Info", ...paths],
      { encoding: "utf8" },
    );
    // istioctl exits non-zero when a message reaches --failure-threshold (Error); an object it
    // cannot parse is only logged ("error processing ... skipping") and would pass unseen.
    const skipped = (r.stderr ?? "").split("\n").filter((l) => /error processing|could not be parsed/i.test(l));
    if (skipped.length) throw new Error(`istioctl analyze could not read every object:\n${skipped.join("\n")}`);
    const out = r.stdout ?? "";
    if (!out.trim().startsWith("[")) throw new Error(`istioctl analyze: ${r.stderr || r.error}`);
    const msgs = JSON.parse(out.slice(0, out.lastIndexOf("]") + 1)) as {
      code: string;
      level: string;
      origin: string;
      message: string;
    }[];
    return msgs.map((m) => ({ code: m.code, level: m.level, origin: m.origin, message: m.message }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const describe = (msgs: AnalyzeMessage[]) =>
  msgs.map((m) => `${m.level} [${m.code}] ${m.origin}: ${m.message}`).join("\n");

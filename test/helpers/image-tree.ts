// The image's file tree without a Docker engine: the Dockerfile's COPY lines (relative to WORKDIR
// /opt/meshtune) assembled in a temp dir from this checkout's build outputs, and its `RUN ln -s`
// lines as symlinks under <tree>/root (so /usr/local/bin/meshtune-bpf resolves as in the image).
// The production node_modules (npm ci --omit=dev) are this checkout's, linked. World-readable, so
// a process running as the image's USER 65532 can read it.
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { ROOT } from "./cli.js";

const WORKDIR = "/opt/meshtune";

/** COPY lines of the Dockerfile as [sources, destination] (relative to WORKDIR). */
export function copies(): [string[], string][] {
  return readFileSync(join(ROOT, "Dockerfile"), "utf8")
    .split("\n")
    .filter((l) => /^COPY\s/.test(l))
    .map((l) => {
      const parts = l.trim().split(/\s+/).slice(1);
      return [parts.slice(0, -1), parts[parts.length - 1]] as [string[], string];
    });
}

export interface ImageTree {
  /** WORKDIR inside the tree. */
  dir: string;
  /** An absolute path of the image, as a path in the tree. */
  path(p: string): string;
}

function chmodTree(p: string): void {
  const st = statSync(p);
  chmodSync(p, st.isDirectory() || st.mode & 0o111 ? 0o755 : 0o644);
  if (st.isDirectory()) for (const e of readdirSync(p)) if (e !== "node_modules") chmodTree(join(p, e));
}

export function assembleImageTree(): ImageTree {
  const root = mkdtempSync(join(tmpdir(), "meshtune-image-"));
  const dir = join(root, WORKDIR);
  mkdirSync(dir, { recursive: true });
  for (const [srcs, dst] of copies())
    for (const src of srcs) {
      if (!existsSync(join(ROOT, src))) throw new Error(`COPY source ${src} missing: build it first`);
      const target = dst.endsWith("/") ? join(dir, dst, basename(src)) : join(dir, dst);
      cpSync(join(ROOT, src), target, { recursive: true });
    }
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  const path = (p: string) => (p.startsWith("/") ? join(root, p) : join(dir, p));
  for (const m of readFileSync(join(ROOT, "Dockerfile"), "utf8").matchAll(/ln -s (\S+) (\S+)/g)) {
    mkdirSync(dirname(path(m[2])), { recursive: true });
    symlinkSync(path(m[1]), path(m[2]));
  }
  chmodTree(root);
  return { dir, path };
}

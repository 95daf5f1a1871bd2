// The image's contract without a Docker engine: the file tree the Dockerfile's COPY lines make
// (WORKDIR /opt/meshtune), assembled in a temp dir from this checkout's build outputs, must run
// what the manifests run. The production node_modules (npm ci --omit=dev) are this checkout's,
// linked. Covered: every COPY source exists; the CLI starts from the tree; the dashboard bundle,
// both BPF loaders and the Wasm module with its sha256 are where the code looks for them.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./helpers/cli.js";
import { assembleImageTree } from "./helpers/image-tree.js";

test("the Dockerfile's tree holds everything the components load, and runs", () => {
  const tree = assembleImageTree().dir;
  for (const f of ["build/meshtune-bpf", "build/meshtune-tcpstats"])
    assert.ok(statSync(join(tree, f)).mode & 0o111, `${f} is in the image and executable (the agent runs it)`);
  assert.ok(existsSync(join(tree, "build/ui/app.js")), "the dashboard bundle (/ui/, recommend --html)");
  assert.is(
    readFileSync(join(tree, "build/meshtune-filter.wasm.sha256"), "utf8").trim(),
    readFileSync(join(ROOT, "build/meshtune-filter.wasm.sha256"), "utf8").trim(),
  );
  const html = join(tree, "..", "report.html");
  const r = spawnSync(
    process.execPath,
    [
      join(tree, "build/meshtune.mjs"),
      "recommend",
      "--access-log",
      join(ROOT, "samples/bookinfo/access.log"),
      "--catalog",
      join(ROOT, "samples/bookinfo/catalog.json"),
      "--html",
      html,
    ],
    { cwd: "/", encoding: "utf8" },
  );
  assert.is(r.status, 0, r.stderr);
  assert.match(readFileSync(html, "utf8"), /<script>/);
});

test.run();

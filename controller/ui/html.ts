// The dashboard page: the esbuild bundle (build/ui/app.js + app.css) inlined into one HTML file,
// with the data embedded (the CLI's self-contained report) or fetched from /api/dashboard (the
// controller's /ui/). A Content-Security-Policy forbids any other network access at view time.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { DashboardData } from "./dashboard-data.js";

/** build/ui next to the bundled CLI (build/meshtune.mjs), or one level up (build/test, build/chunks). */
function assetDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const dirs = [
    join(here, "ui"),
    join(here, "..", "ui"),
    join(here, "..", "..", "build", "ui"),
    join(process.cwd(), "build", "ui"),
  ];
  const d = dirs.find((x) => existsSync(join(x, "app.js")));
  if (!d) throw new Error(`dashboard bundle not found (looked in ${dirs.join(", ")}); run make build`);
  return d;
}

let cached: { js: string; css: string } | null = null;
function assets(): { js: string; css: string } {
  if (cached) return cached;
  const d = assetDir();
  return (cached = { js: readFileSync(join(d, "app.js"), "utf8"), css: readFileSync(join(d, "app.css"), "utf8") });
}

/** JSON safe inside <script>: no "</script>", no "<!--", no U+2028/9 surprises. */
const scriptJson = (v: unknown) =>
  JSON.stringify(v)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
const inlineJs = (js: string) => js.replace(/<\/script/gi, "<\\/script");

export function dashboardHtml(data: DashboardData | null): string {
  const a = assets();
  const csp = `default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src ${data ? "'none'" : "'self'"}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="color-scheme" content="light dark">
<title>meshtune${data ? ` — ${data.workloads.length} workloads` : ""}</title>
<style>${a.css}</style></head>
<body><noscript>The meshtune dashboard needs JavaScript.</noscript>
<script type="application/json" id="meshtune-data">${data ? scriptJson(data) : ""}</script>
<script>${inlineJs(a.js)}</script>
</body></html>
`;
}

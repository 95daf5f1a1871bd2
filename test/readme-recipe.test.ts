// The README's user recipe is runnable as written: every `meshtune` command it shows uses only
// flags that command accepts, and the recipe's recommend step, run on inputs shaped the way the
// recipe collects them (a gzipped `kubectl logs --prefix --timestamps` stream, a multi-kind
// `kubectl get … -A -o json` List, the istio ConfigMap as YAML), writes the files it promises.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { ROOT, meshtune } from "./helpers/cli.js";

const readme = readFileSync(join(ROOT, "README.md"), "utf8");

/** Every `meshtune CMD …` invocation in the README's code (fenced or inline), continuation lines joined. */
function invocations(): { cmd: string; flags: string[] }[] {
  const code = [
    ...[...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]),
    ...[...readme.matchAll(/`(meshtune [^`]+)`/g)].map((m) => m[1]),
  ]
    .join("\n")
    .replace(/\\\n\s*/g, " ");
  return [...code.matchAll(/meshtune (recommend|diff|diagnose|controller|features)\b([^\n`]*)/g)].map((m) => ({
    cmd: m[1],
    flags: [...m[2].matchAll(/(--[a-z][a-z-]*)/g)].map((f) => f[1]),
  }));
}

test("every meshtune command in the README uses flags that command accepts", () => {
  const seen = invocations();
  assert.ok(seen.filter((s) => s.cmd === "recommend").length >= 1, "the recipe shows recommend");
  assert.ok(
    seen.some((s) => s.cmd === "diff"),
    "the recipe shows diff",
  );
  const help = new Map<string, string>();
  for (const s of seen) {
    if (!help.has(s.cmd)) help.set(s.cmd, meshtune([s.cmd, "--help"]).stdout);
    for (const f of s.flags)
      assert.ok(help.get(s.cmd)!.includes(`${f} `) || help.get(s.cmd)!.includes(`${f}\n`), `${s.cmd} ${f}`);
  }
});

test("the recipe's recommend step on recipe-shaped inputs writes per-object files, the report with its checks, and the HTML", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-recipe-"));
  // `kubectl logs --prefix --timestamps`: the kubelet's RFC 3339 timestamp after the prefix.
  const line = (pod: string, ts: string, authority: string, host: string) =>
    `[pod/${pod}/istio-proxy] ${ts} [${ts.replace(/\.\d+Z$/, ".000Z")}] "GET /x HTTP/1.1" 200 - via_upstream - "-" 0 10 4 3 "-" "curl/8.5.0" "9c59b654-b743-4717-12be-7f0c846c58e6" "${authority}" "10.244.3.9:8080" outbound|8080||${host} 10.244.1.50:37652 10.96.7.7:8080 10.244.1.50:55059 - default`;
  const lines: string[] = [];
  for (let i = 0; i < 30; i++) {
    const ts = new Date(Date.parse("2026-12-01T10:00:00Z") + i * 60_000).toISOString();
    lines.push(line("web-7bf8c9648f-2lcgn", ts, "api:8080", "api.store.svc.cluster.local"));
  }
  writeFileSync(join(dir, "access.log.gz"), gzipSync(lines.join("\n") + "\n"));
  const pod = (name: string, app: string) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      generateName: name.slice(0, -5),
      namespace: "store",
      labels: { app, "pod-template-hash": name.split("-").at(-2), "security.istio.io/tlsMode": "istio" },
      annotations: { "sidecar.istio.io/status": "{}" },
      ownerReferences: [{ kind: "ReplicaSet", name: name.slice(0, -6), controller: true }],
    },
    spec: { containers: [{ name: app }, { name: "istio-proxy" }] },
  });
  writeFileSync(
    join(dir, "catalog.json"),
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "store", labels: { "istio-injection": "enabled" } } },
        pod("web-7bf8c9648f-2lcgn", "web"),
        pod("api-5d8f7c9b4-x9q2z", "api"),
        {
          apiVersion: "v1",
          kind: "Service",
          metadata: { name: "api", namespace: "store" },
          spec: { clusterIP: "10.96.7.7", selector: { app: "api" }, ports: [{ name: "http", port: 8080 }] },
        },
      ],
    }),
  );
  writeFileSync(
    join(dir, "mesh.yaml"),
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n    outboundTrafficPolicy: {mode: ALLOW_ANY}\n",
  );
  const out = join(dir, "out");
  const r = meshtune([
    "recommend",
    "--access-log",
    join(dir, "access.log.gz"),
    "--catalog",
    join(dir, "catalog.json"),
    "--mesh-config",
    join(dir, "mesh.yaml"),
    "--out-dir",
    out,
    "--report",
    join(out, "report.txt"),
    "--html",
    join(out, "report.html"),
    "--rules",
  ]);
  assert.is(r.code, 0, r.stderr);
  const files = readdirSync(out).sort();
  assert.ok(files.includes("store.web.yaml"), files.join(","));
  assert.ok(files.includes("report.html") && files.includes("report.txt"), files.join(","));
  const report = readFileSync(join(out, "report.txt"), "utf8");
  assert.match(report, /## coverage/);
  assert.match(report, /meshed workloads the input did not cover \(no Sidecar\): store\/api/, "the idle pod is named");
  assert.match(readFileSync(join(out, "store.web.yaml"), "utf8"), /store\/api\.store\.svc\.cluster\.local/);
});

test.run();

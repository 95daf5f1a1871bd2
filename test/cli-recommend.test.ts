import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, writeFileSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { gzipSync } from "node:zlib";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { meshtune, CLI } from "./helpers/cli.js";
import * as L from "./fixtures/lines.js";

const tmp = mkdtempSync(join(tmpdir(), "meshtune-cli-"));
const SAMPLE = ["--access-log", "samples/bookinfo/access.log"];

test("bundled sample: one YAML List of Sidecars on stdout, report on stderr", () => {
  const r = meshtune(["recommend", ...SAMPLE, "--catalog", "samples/bookinfo/catalog.json"]);
  assert.is(r.code, 0, r.stderr);
  const all = parseAllDocuments(r.stdout).map((d) => d.toJS());
  assert.is(all.length, 1, "exactly one document");
  assert.is(all[0].kind, "List");
  const docs = all[0].items;
  assert.is(docs.length, 10);
  const pp = docs.find((d: { metadata: { name: string } }) => d.metadata.name === "productpage-v1");
  assert.equal(pp.spec.egress[0].hosts, [
    "bookinfo/details.bookinfo.svc.cluster.local",
    "bookinfo/reviews.bookinfo.svc.cluster.local",
    "istio-system/*",
    "meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local",
  ]);
  assert.match(r.stderr, /gateway skipped: istio-system\/istio-ingressgateway/);
  assert.match(r.stderr, /142\.250\.74\.10:443 sni=www\.googleapis\.com: unregistered/);
  assert.match(r.stderr, /BLOCKED \(BlackHoleCluster\)/);
  assert.match(r.stderr, /TOTAL \(all generated sidecars\)/);
  assert.match(r.stderr, /skipped: not-access-log 13/);
});

test("-o json prints a kubectl List; --namespace filters", () => {
  const r = meshtune(["recommend", ...SAMPLE, "-o", "json", "--namespace", "shop"]);
  assert.is(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout);
  assert.is(list.kind, "List");
  assert.equal(
    list.items.map((i: any) => i.metadata.name),
    ["cart-v1", "frontend-v1", "payments-v1"],
  );
});

test("--out-dir writes one file per workload; --report writes the report", () => {
  const dir = join(tmp, "out");
  const rep = join(tmp, "report.txt");
  const r = meshtune(["recommend", ...SAMPLE, "--out-dir", dir, "--report", rep]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, "");
  assert.ok(readdirSync(dir).includes("bookinfo.productpage-v1.yaml"));
  assert.is(readdirSync(dir).length, 10);
  assert.match(readFileSync(rep, "utf8"), /sidecars generated: 10/);
});

test("stdin with --workload attribution", () => {
  const r = meshtune(
    ["recommend", "--access-log", "-", "--workload", "bookinfo/productpage-v1"],
    [L.TEXT_1_9, L.TEXT_TCP, ""].join("\n"),
  );
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /bookinfo\/details\.bookinfo\.svc\.cluster\.local/);
  assert.match(r.stdout, /bookinfo\/mongodb\.bookinfo\.svc\.cluster\.local/);
});

const oneLine = (s: string) => s.trim().split("\n").length === 1 && !/\n\s+at /.test(s);

test("missing file: exit 1, one line naming it", () => {
  const r = meshtune(["recommend", "--access-log", "/nonexistent/x.log"]);
  assert.is(r.code, 1);
  assert.is(r.stderr.trim(), "meshtune: --access-log /nonexistent/x.log: no such file");
});

test("unreadable path (a directory): one line", () => {
  const r = meshtune(["recommend", "--access-log", tmp]);
  assert.is(r.code, 1);
  assert.ok(oneLine(r.stderr), r.stderr);
  assert.match(r.stderr, /is a directory/);
});

test("empty file: one line, exit 1, no stack", () => {
  const f = join(tmp, "empty.log");
  writeFileSync(f, "");
  const r = meshtune(["recommend", "--access-log", f]);
  assert.is(r.code, 1);
  assert.ok(oneLine(r.stderr), r.stderr);
  assert.match(r.stderr, /no access-log entries or reports found in .*empty\.log/);
});

test("binary garbage, a 10 MB line and truncated JSON beside good lines: good lines kept", () => {
  const f = join(tmp, "mixed.log");
  const garbage = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 31 + 7) % 256));
  writeFileSync(
    f,
    Buffer.concat([
      Buffer.from(L.prefixed("productpage-v1-6987489c74-6fgz8", L.TEXT_1_9) + "\n"),
      garbage,
      Buffer.from("\n"),
      Buffer.alloc(10 << 20, 0x41),
      Buffer.from("\n"),
      Buffer.from(L.prefixed("cart-v1-66c7d8f9b4-q7xw2", L.JSON_LINE) + "\n"),
      Buffer.from(L.prefixed("cart-v1-66c7d8f9b4-q7xw2", L.JSON_LINE.slice(0, 70))),
    ]),
  );
  const r = meshtune(["recommend", "--access-log", f, "-o", "json"]);
  assert.is(r.code, 0, r.stderr);
  assert.equal(
    JSON.parse(r.stdout)
      .items.map((i: any) => `${i.metadata.namespace}/${i.metadata.name}`)
      .sort(),
    ["bookinfo/productpage-v1", "default/cart-v1"],
  );
  assert.match(r.stderr, /too-long 1/);
  assert.match(r.stderr, /malformed-json 1/);
});

test("a log that starts with 100,000 fake pods: real Sidecars kept, the limit said, --strict exits 3", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-flood-"));
  const fake = Array.from({ length: 100_000 }, (_, i) =>
    L.prefixed(`junk-${i}-5d8f7c9b4-x${i % 10}q2z`, L.TEXT_1_9),
  ).join("\n");
  const real = Array.from({ length: 50 }, () => L.prefixed("reviews-v2-7bf8c9648f-2lcgn", L.TEXT_1_9)).join("\n");
  const log = join(dir, "access.log");
  writeFileSync(log, fake + "\n" + real + "\n");
  const r = meshtune(["recommend", "--access-log", log, "--default-namespace", "bookinfo", "-o", "json"]);
  assert.is(r.code, 0, r.stderr.slice(0, 500));
  const names = (JSON.parse(r.stdout).items as { metadata: { name: string } }[]).map((s) => s.metadata.name);
  assert.ok(names.includes("reviews-v2"), "the real workload survives the flood");
  assert.match(r.stderr, /LIMITS HIT, data was dropped: .*evicted \(least recently seen\) [\d,]+ workloads\/pods/);
  const strict = meshtune([
    "recommend",
    "--access-log",
    log,
    "--default-namespace",
    "bookinfo",
    "-o",
    "json",
    "--strict",
  ]);
  assert.is(strict.code, 3);
  assert.match(strict.stderr, /^meshtune: --strict: LIMITS HIT/m);
  assert.is(strict.stdout, "", "--strict refuses before anything reaches stdout (no partial apply)");
});

test("usage errors exit 2 with one line", () => {
  const r = meshtune(["recommend"]);
  assert.is(r.code, 2);
  assert.ok(oneLine(r.stderr), r.stderr);
  const b = meshtune(["recommend", "--access-log", "x", "-o", "xml"]);
  assert.is(b.code, 2);
  assert.match(b.stderr, /xml/);
  assert.ok(oneLine(b.stderr));
  const c = meshtune([
    "recommend",
    "--access-log",
    "samples/bookinfo/access.log",
    "--catalog",
    "samples/bookinfo/access.log",
  ]);
  assert.is(c.code, 1);
  assert.match(c.stderr, /^meshtune: --catalog samples\/bookinfo\/access.log: /);
  assert.ok(oneLine(c.stderr));
});

test("--unlearned: egress-proxy on Istio lines proven to honour it, passthrough past them or when asked; a bad value is a usage error", () => {
  const FB = ["--fallback-host", "meshtune-fallback.meshtune-system"];
  const proven = meshtune(["recommend", ...SAMPLE, ...FB, "--istio-version", "1.28"]);
  assert.is(proven.code, 0, proven.stderr);
  assert.match(proven.stdout, /host: meshtune-fallback\.meshtune-system\.svc\.cluster\.local/, "short form completed");
  const newer = meshtune(["recommend", ...SAMPLE, ...FB, "--istio-version", "1.40"]);
  assert.is(newer.code, 0, newer.stderr);
  assert.not.match(newer.stdout, /egressProxy/);
  assert.match(newer.stderr, /not used as egressProxy: Istio 1\.40 is newer than 1\.31/);
  const asked = meshtune(["recommend", ...SAMPLE, ...FB, "--unlearned", "passthrough"]);
  assert.not.match(asked.stdout, /egressProxy/);
  const bad = meshtune(["recommend", ...SAMPLE, "--unlearned", "sometimes"]);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--unlearned sometimes: expected auto, egress-proxy or passthrough/);
});

test("--workload that matches no workload in the input: exit 2 with the closest names seen, nothing on stdout", () => {
  const r = meshtune(["recommend", ...SAMPLE, "--workload", "bookinfo/productpage"]);
  assert.is(r.code, 2, r.stderr);
  assert.is(r.stdout, "");
  assert.match(
    r.stderr,
    /--workload bookinfo\/productpage: no traffic of that workload in the input; workloads seen: bookinfo\/productpage-v1, /,
  );
  const ok = meshtune(["recommend", ...SAMPLE, "--workload", "bookinfo/productpage-v1", "-o", "json"]);
  assert.is(ok.code, 0, ok.stderr);
  assert.equal(
    JSON.parse(ok.stdout).items.map((s: { metadata: { name: string } }) => s.metadata.name),
    ["productpage-v1"],
  );
});

test("a user Sidecar in --catalog that selects a workload: no second Sidecar for it (IST0110), the reason in the report", () => {
  const cat = JSON.parse(readFileSync("samples/bookinfo/catalog.json", "utf8"));
  cat.items.push({
    apiVersion: "networking.istio.io/v1",
    kind: "Sidecar",
    metadata: { name: "reviews-mine", namespace: "bookinfo" },
    spec: { workloadSelector: { labels: { app: "reviews", version: "v2" } }, egress: [{ hosts: ["./*"] }] },
  });
  const dir = mkdtempSync(join(tmpdir(), "meshtune-usersc-"));
  writeFileSync(join(dir, "catalog.json"), JSON.stringify(cat));
  const r = meshtune(["recommend", ...SAMPLE, "--catalog", join(dir, "catalog.json"), "-o", "json"]);
  assert.is(r.code, 0, r.stderr);
  const names = JSON.parse(r.stdout).items.map((s: { metadata: { name: string } }) => s.metadata.name);
  assert.not.ok(names.includes("reviews-v2"), names.join(","));
  assert.ok(names.includes("reviews-v3"));
  assert.match(
    r.stderr,
    /user Sidecar bookinfo\/reviews-mine already selects this workload \(two Sidecars on one pod: IST0110\)/,
  );
});

test("inputs as users collect them: gzip, kubectl logs --prefix --timestamps; an input that teaches nothing gets its report and the fix; stdin once", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-inputs-"));
  const lines = readFileSync("samples/bookinfo/access.log", "utf8").split("\n").filter(Boolean);
  // --timestamps: the kubelet's RFC 3339 time after the prefix.
  const stamped =
    lines.map((l) => l.replace(/^(\[pod\/[^\]]+\] )/, "$12026-11-20T10:00:06.830123456Z ")).join("\n") + "\n";
  writeFileSync(join(dir, "stamped.log"), stamped);
  writeFileSync(join(dir, "stamped.log.gz"), gzipSync(stamped));
  const plain = meshtune(["recommend", ...SAMPLE, "-o", "json"]);
  for (const f of ["stamped.log", "stamped.log.gz"]) {
    const r = meshtune(["recommend", "--access-log", join(dir, f), "-o", "json"]);
    assert.is(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout), JSON.parse(plain.stdout), `${f}: the same Sidecars as the plain log`);
  }
  // Unprefixed lines without --workload: the report still says what was skipped, and the error the fix.
  writeFileSync(join(dir, "unprefixed.log"), lines.map((l) => l.replace(/^\[pod\/[^\]]+\] /, "")).join("\n") + "\n");
  const un = meshtune(["recommend", "--access-log", join(dir, "unprefixed.log")]);
  assert.is(un.code, 1);
  assert.match(un.stderr, /# meshtune report\ninput .*unprefixed\.log: .* skipped: .*unattributed/);
  assert.match(un.stderr, /carry no pod: collect them with `kubectl logs --prefix`, or pass --workload NS\/NAME/);
  const twice = meshtune(["recommend", "--access-log", "-", "--access-log", "-"], "");
  assert.is(twice.code, 2);
  assert.match(twice.stderr, /standard input can be read once/);
});

test("meshtune diff: per workload what applying would create or change, the conflicts left alone; exit 1 when something would change, 0 when nothing", () => {
  const cat = JSON.parse(readFileSync("samples/bookinfo/catalog.json", "utf8"));
  const managed = { "app.kubernetes.io/managed-by": "meshtune" };
  cat.items.push(
    {
      apiVersion: "networking.istio.io/v1",
      kind: "Sidecar",
      metadata: { name: "reviews-v2", namespace: "bookinfo", labels: managed },
      spec: {
        workloadSelector: { labels: { app: "reviews", version: "v2" } },
        egress: [{ hosts: ["bookinfo/old.bookinfo.svc.cluster.local", "istio-system/*"] }],
      },
    },
    {
      apiVersion: "networking.istio.io/v1",
      kind: "Sidecar",
      metadata: { name: "mine", namespace: "bookinfo" },
      spec: { workloadSelector: { labels: { app: "ratings" } }, egress: [{ hosts: ["./*"] }] },
    },
  );
  const dir = mkdtempSync(join(tmpdir(), "meshtune-diff-"));
  writeFileSync(join(dir, "catalog.json"), JSON.stringify(cat));
  const args = ["--access-log", "samples/bookinfo/access.log", "--min-requests", "20"];
  const r = meshtune(["diff", ...args, "--catalog", join(dir, "catalog.json")]);
  assert.is(r.code, 1, r.stderr);
  assert.match(
    r.stdout,
    /^~ bookinfo\/reviews-v2: \+bookinfo\/ratings\.bookinfo\.svc\.cluster\.local .*-bookinfo\/old\.bookinfo\.svc\.cluster\.local$/m,
  );
  assert.match(r.stdout, /^\+ bookinfo\/productpage-v1: new Sidecar, 4 egress hosts/m);
  assert.match(r.stdout, /^! bookinfo\/ratings-v1: user Sidecar bookinfo\/mine already selects this workload/m);
  assert.match(r.stdout, /8 to create, 1 to change, 0 unchanged, 1 conflicts$/m);
  // After applying exactly what recommend prints, there is nothing left to change.
  const rec = JSON.parse(meshtune(["recommend", ...args, "-o", "json", "--catalog", join(dir, "catalog.json")]).stdout);
  cat.items = cat.items.filter(
    (o: { kind: string; metadata: { name: string } }) => o.kind !== "Sidecar" || o.metadata.name === "mine",
  );
  cat.items.push(...rec.items);
  writeFileSync(join(dir, "applied.json"), JSON.stringify(cat));
  const again = meshtune(["diff", ...args, "--catalog", join(dir, "applied.json")]);
  assert.is(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /0 to create, 0 to change, 9 unchanged, 1 conflicts$/m);
});

test("progress on large inputs: on a terminal only (a pseudo-terminal from script(1)); never on a pipe", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-progress-"));
  const log = join(dir, "big.log");
  const sample = readFileSync("samples/bookinfo/access.log", "utf8");
  writeFileSync(log, sample.repeat(Math.ceil(80e6 / sample.length)));
  const tty = spawnSync(
    "script",
    ["-qc", `${process.execPath} ${CLI} recommend --access-log ${log} -o json > /dev/null`, "/dev/null"],
    {
      encoding: "utf8",
      maxBuffer: 64 << 20,
    },
  );
  assert.match(tty.stdout, /meshtune: .*big\.log: \d+ MB read/);
  const piped = meshtune(["recommend", "--access-log", log, "-o", "json"]);
  assert.is(piped.code, 0);
  assert.not.match(piped.stderr, /MB read/);
});

test("coverage: each workload's evidence in the report (thin windows flagged), and meshed workloads the input never showed", () => {
  const cat = JSON.parse(readFileSync("samples/bookinfo/catalog.json", "utf8"));
  cat.items.push({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "old-app-7d9f8c6b5d-abcde",
      namespace: "legacy",
      labels: { app: "old-app", "pod-template-hash": "7d9f8c6b5d" },
      annotations: { "sidecar.istio.io/status": "{}" },
      ownerReferences: [{ kind: "ReplicaSet", name: "old-app-7d9f8c6b5d", controller: true }],
    },
    spec: { containers: [{ name: "app" }, { name: "istio-proxy" }] },
  });
  const dir = mkdtempSync(join(tmpdir(), "meshtune-coverage-"));
  writeFileSync(join(dir, "catalog.json"), JSON.stringify(cat));
  const r = meshtune(["recommend", ...SAMPLE, "--catalog", join(dir, "catalog.json")]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /## coverage/);
  assert.match(
    r.stderr,
    /^bookinfo\/productpage-v1: 180 requests over \d+ min {2}THIN$/m,
    "the sample spans minutes: thin",
  );
  assert.match(r.stderr, /meshed workloads the input did not cover \(no Sidecar for them\): legacy\/old-app/);
});

test("without a catalog, a blocked request to NAME.NS.svc.<domain> is a Service by its name: learned; any other blocked host is not", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-blocked-"));
  const line = (host: string) =>
    `[pod/reviews-v2-7bf8c9648f-2lcgn/istio-proxy] [2026-11-20T10:00:06.830Z] "GET /r HTTP/1.1" 502 - direct_response - "-" 0 0 0 - "-" "curl/8.5.0" "9c59b654-b743-4717-12be-7f0c846c58e6" "${host}" "-" - - 10.96.7.7:9080 10.244.1.50:55059 - block_all`;
  writeFileSync(
    join(dir, "blocked.log"),
    [line("ratings.bookinfo.svc.cluster.local:9080"), line("api.unknown.example:9080")].join("\n") + "\n",
  );
  const r = meshtune([
    "recommend",
    "--access-log",
    join(dir, "blocked.log"),
    "--default-namespace",
    "bookinfo",
    "-o",
    "json",
  ]);
  assert.is(r.code, 0, r.stderr);
  const hosts = JSON.parse(r.stdout).items[0].spec.egress[0].hosts as string[];
  assert.ok(hosts.includes("bookinfo/ratings.bookinfo.svc.cluster.local"), hosts.join(","));
  assert.not.ok(
    hosts.some((h) => h.includes("unknown.example")),
    hosts.join(","),
  );
});

test("without a catalog, a pod with no inbound traffic is placed where its short-name calls resolved; a gateway's Host never places it", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-ns-"));
  const call = (pod: string, authority: string, host: string) =>
    `[pod/${pod}/istio-proxy] [2026-11-20T10:00:06.830Z] "GET /o HTTP/1.1" 200 - via_upstream - "-" 0 12 3 2 "-" "curl/8.5.0" "9c59b654-b743-4717-12be-7f0c846c58e6" "${authority}" "10.244.3.9:8080" outbound|8080||${host} 10.244.1.50:37652 10.96.7.7:8080 10.244.1.50:55059 - default`;
  writeFileSync(
    join(dir, "calls.log"),
    [
      call("order-worker-7bf8c9648f-2lcgn", "orders-api:8080", "orders-api.orders.svc.cluster.local"),
      call("order-worker-7bf8c9648f-2lcgn", "billing.finance:8080", "billing.finance.svc.cluster.local"),
      call("order-worker-7bf8c9648f-2lcgn", "orders-api:8080", "orders-api.orders.svc.cluster.local"),
      call("istio-ingressgateway-5c8d7f6b4-x9kqz", "orders-api:8080", "orders-api.orders.svc.cluster.local"),
    ].join("\n") + "\n",
  );
  const r = meshtune(["recommend", "--access-log", join(dir, "calls.log"), "-o", "json"]);
  assert.is(r.code, 0, r.stderr);
  const sc = JSON.parse(r.stdout).items;
  assert.equal(
    sc.map((i: any) => `${i.metadata.namespace}/${i.metadata.name}`),
    ["orders/order-worker"],
    "`orders-api` was completed by the pod's own search list: it runs in orders, not default",
  );
  assert.match(r.stderr, /namespaces inferred .*short-name calls.*order-worker-7bf8c9648f-2lcgn→orders/);
});

test("Envoy-based ztunnel lines (Istio 1.15-1.17 ambient: tunnel clusters) are a ztunnel, never a Sidecar", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-ztunnel-"));
  const zt = `[pod/ztunnel-x7k2p/istio-proxy] [2026-11-20T10:00:06.830Z] "- - -" 0 - - - "-" 120 300 5 - "-" "-" "-" "-" "10.244.1.9:15008" outbound_tunnel_clus_spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings 10.244.1.50:52525 10.96.7.7:9080 10.244.1.50:55059 - -`;
  writeFileSync(join(dir, "zt.log"), zt + "\n" + readFileSync("samples/bookinfo/access.log", "utf8"));
  const r = meshtune(["recommend", "--access-log", join(dir, "zt.log"), "-o", "json"]);
  assert.is(r.code, 0, r.stderr);
  const names = JSON.parse(r.stdout).items.map((s: { metadata: { name: string } }) => s.metadata.name);
  assert.not.ok(
    names.some((n: string) => n.startsWith("ztunnel")),
    names.join(","),
  );
  assert.match(r.stderr, /ztunnel-log 1/);
  assert.match(r.stderr, /ztunnel skipped: .*ztunnel/);
});

test("ztunnel's connection log (Rust ztunnel): the ambient pods it names get their L4 edges in the graph and the dashboard, never a Sidecar", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-ztlog-"));
  const line = (dir_: string, t: string) =>
    `[pod/ztunnel-x7k2p/istio-proxy] ${t}\tinfo\taccess\tconnection complete\tsrc.addr=10.244.1.5:52332 src.workload=sleep-7bf8c9648f-2lcgn src.namespace=demo src.identity="spiffe://cluster.local/ns/demo/sa/sleep" dst.addr=10.244.2.7:15008 dst.hbone_addr=10.244.2.7:8080 dst.service=httpbin.demo.svc.cluster.local dst.workload=httpbin-5d8f7c9b4-x9q2z dst.namespace=demo dst.identity="spiffe://cluster.local/ns/demo/sa/httpbin" direction="${dir_}" bytes_sent=120 bytes_recv=300 duration="12ms"`;
  writeFileSync(
    join(dir, "zt.log"),
    [
      line("outbound", "2026-11-20T10:00:06.830000Z"),
      line("inbound", "2026-11-20T10:00:06.842000Z"),
      L.prefixed("productpage-v1-6987489c74-6fgz8", L.TEXT_1_9),
    ].join("\n") + "\n",
  );
  const html = join(dir, "r.html");
  const r = meshtune(["recommend", "--access-log", join(dir, "zt.log"), "-o", "json", "--html", html]);
  assert.is(r.code, 0, r.stderr);
  const names = JSON.parse(r.stdout).items.map((x: { metadata: { name: string } }) => x.metadata.name);
  assert.equal(names, ["productpage-v1"], "only the sidecar pod gets a Sidecar");
  assert.match(r.stderr, /ambient skipped: demo\/sleep .*ambient pod, no sidecar/);
  assert.match(r.stderr, /ambient skipped: demo\/httpbin /);
  const data = JSON.parse(
    /<script type="application\/json" id="meshtune-data">([\s\S]*?)<\/script>/.exec(readFileSync(html, "utf8"))![1],
  );
  const kinds = new Map(data.graph.nodes.map((n: { id: string; kind: string }) => [n.id, n.kind]));
  assert.is(kinds.get("demo/sleep"), "ambient");
  assert.is(kinds.get("demo/httpbin"), "ambient");
  const e = (a: string, b: string) =>
    data.graph.edges.some((x: { source: string; target: string }) => x.source === a && x.target === b);
  assert.ok(
    e("demo/sleep", "httpbin.demo.svc.cluster.local") && e("httpbin.demo.svc.cluster.local", "demo/httpbin"),
    "joined through the service",
  );
});

test("bundled sample with --rules --resources --discovery --cryptomb: Sidecars, then reviewable rules and patches, each rule valid for Istio", async () => {
  const { validateRule } = await import("../controller/tune/rule-validate.js");
  const cat = JSON.parse(readFileSync("samples/bookinfo/catalog.json", "utf8"));
  cat.items.push({ kind: "Node", metadata: { name: "icx-1", labels: { "meshtune.io/cryptomb": "true" } } });
  const dir = mkdtempSync(join(tmpdir(), "meshtune-tune-"));
  writeFileSync(join(dir, "catalog.json"), JSON.stringify(cat));
  const r = meshtune([
    "recommend",
    "--access-log",
    "samples/bookinfo/access.log",
    "--catalog",
    join(dir, "catalog.json"),
    "--rules",
    "--resources",
    "--discovery",
    "--cryptomb",
    "--min-requests",
    "20",
    "--istio-version",
    "1.27",
  ]);
  assert.is(r.code, 0, r.stderr);
  // Exactly one document on stdout, whole objects only (Sidecars and meshtune's own rules);
  // partial Deployments and Services (patches) and install guidance go to the report.
  const all = parseAllDocuments(r.stdout).map((d) => d.toJS());
  assert.is(all.length, 1, "exactly one document");
  assert.is(all[0].kind, "List");
  const docs = all[0].items;
  const kinds = docs.map((d: { kind?: string }) => d.kind ?? "?");
  assert.equal([...new Set(kinds)].sort(), ["DestinationRule", "Sidecar", "VirtualService"], kinds.join(","));
  assert.match(r.stderr, /## not on stdout: merge these into objects you own/);
  assert.match(r.stderr, /kind: IstioOperator/);
  assert.match(r.stderr, /kind: Deployment/);
  for (const d of docs.filter((x: { kind: string }) => x.kind === "VirtualService" || x.kind === "DestinationRule"))
    assert.equal(validateRule(d), [], `${d.kind} ${d.metadata.name}`);
  // The sample spans 152 s: too little to know a tail, so no timeout, and the report says why.
  assert.match(r.stderr, /not set: timeout: too little evidence \(152 s observed < 600 s\)/);
  assert.not.match(r.stderr, /http\[0\]\.timeout: /, "no reason printed for a field that was not emitted");
  assert.not.ok(
    docs.some((d: any) => d.metadata?.namespace === "istio-system" && d.kind !== "Sidecar"),
    "no rule objects in istio-system",
  );
  assert.match(r.stderr, /sidecar\.istio\.io\/proxyCPU/, "resource patches in the report");
  const patches = parseAllDocuments(
    r.stderr.slice(r.stderr.indexOf("## not on stdout")).split("\n").slice(1).join("\n").split("\n## ")[0],
  )
    .map((d) => d.toJS())
    .filter(Boolean);
  const gw = patches.find(
    (d) =>
      d.metadata?.annotations?.["proxy.istio.io/config"] ||
      d.spec?.template?.metadata?.annotations?.["proxy.istio.io/config"],
  );
  assert.not.ok(gw, "the sample's gateway serves plaintext (no SNI): no CryptoMB on assumed TLS");
  assert.match(r.stderr, /gateway, but no TLS appears in the input/);
  assert.is(
    meshtune(["recommend", "--access-log", "samples/bookinfo/access.log", "--rules", "--istio-version", "latest"]).code,
    2,
  );
});

test.run();

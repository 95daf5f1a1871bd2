// `meshtune controller` as a process, against the fake API server (test double):
// /healthz, /readyz only after initial sync, the collector, /metrics, JSON logs, clean SIGTERM.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { CLI } from "./helpers/cli.js";
import { report } from "./fixtures/report.js";
import { InboundProxy } from "./istio/inbound-proxy.js";
import { fakeBookinfo } from "./helpers/fake-cluster.js";
import { spawnController } from "./helpers/controller-proc.js";

test("controller process: readiness after sync, reports accepted, Sidecar applied, metrics, JSON logs", async () => {
  const { fake, kubeconfig: kc } = await fakeBookinfo();
  const c = spawnController(kc);
  const { p, port, url } = c;
  // The controller's own sidecar, for mTLS callers holding the reviews workload's certificate.
  const sidecar = await new InboundProxy({
    appPort: port,
    self: "meshtune-system/meshtune-controller",
    peer: "bookinfo/bookinfo-reviews",
  }).start();
  fake.tokens.set("alice-token", { username: "alice", groups: ["system:authenticated"] });
  fake.tokens.set("bob-token", { username: "bob", groups: ["system:authenticated"] });
  fake.grants.add("alice|get|/meshtune/recommendations");
  try {
    assert.is(await c.ready(), 200, c.stderr());
    assert.is((await fetch(url("/healthz"))).status, 200);
    const now = Date.now();
    const body = JSON.stringify(report({ window: { startMs: now - 60_000, endMs: now } }));
    const direct = await fetch(url("/v1/reports"), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-forwarded-client-cert":
          "By=spiffe://cluster.local/ns/meshtune-system/sa/meshtune-controller;URI=spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
      },
      body,
    });
    // Not trusted, and said retryably (503 unexpected-source) with the likely mesh setting named.
    assert.is(direct.status, 503, "XFCC not from the sidecar's 127.0.0.6 connection is not trusted");
    assert.match(await direct.text(), /^unexpected-source: .*LOCALHOST/);
    const r = await fetch(`${sidecar.url}/v1/reports`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    assert.is(r.status, 202, await r.text());
    for (let i = 0; i < 50 && !fake.get("sidecars", "bookinfo", "reviews-v2"); i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.ok(fake.get("sidecars", "bookinfo", "reviews-v2"), c.stderr());
    assert.ok(fake.get("leases", "meshtune-system", "meshtune-controller")?.spec.holderIdentity);
    assert.is((await fetch(url("/recommendations"))).status, 401, "reads need an identity");
    assert.is(
      (await fetch(url("/recommendations"), { headers: { authorization: "Bearer bob-token" } })).status,
      403,
      "and RBAC",
    );
    assert.is((await fetch(url("/recommendations"), { headers: { authorization: "Bearer nobody" } })).status, 401);
    const rec = (await (
      await fetch(url("/recommendations"), { headers: { authorization: "Bearer alice-token" } })
    ).json()) as { mode: string; workloads: { workload: string; action: string }[] };
    assert.equal(
      rec.workloads.map((w) => `${w.workload} ${w.action}`),
      ["bookinfo/reviews-v2 apply"],
    );
    // The same tuning the offline CLI gives, from what the collector learned.
    const tuned = (await (
      await fetch(url("/recommendations?istioVersion=1.27&minRequests=1"), {
        headers: { authorization: "Bearer alice-token" },
      })
    ).json()) as {
      tuning: {
        rules: { host: string }[];
        resources: { workload: string; annotations: Record<string, string> }[];
        invalid: unknown[];
      };
    };
    assert.ok(tuned.tuning.rules.length > 0, JSON.stringify(tuned.tuning).slice(0, 300));
    assert.equal(
      tuned.tuning.resources.map((r) => r.workload),
      ["bookinfo/reviews-v2"],
    );
    assert.match(tuned.tuning.resources[0].annotations["sidecar.istio.io/proxyCPU"], /^\d+m$/);
    assert.equal(tuned.tuning.invalid, []);
    assert.is(
      (await fetch(url("/recommendations?istioVersion=latest"), { headers: { authorization: "Bearer alice-token" } }))
        .status,
      400,
    );
    const metrics = await (await fetch(url("/metrics"))).text();
    assert.match(metrics, /meshtune_reports_received_total 1/);
    assert.match(metrics, /meshtune_reconcile_total\{action="apply"\} \d+/);
    assert.match(metrics, /meshtune_process_cpu_seconds_total/);
    assert.not.match(
      metrics,
      /svc\.cluster\.local|reviews|bookinfo/,
      "/metrics is open, so it names no host or workload",
    );
    const err = c.stderr();
    const lines = err.trim().split("\n");
    assert.ok(
      lines.every((l) => {
        try {
          return typeof JSON.parse(l).msg === "string";
        } catch {
          return false;
        }
      }),
      err,
    );
    assert.not.match(err, /fake-token|alice-token|bob-token/, "never log secrets");
    p.kill("SIGTERM");
    const code = await new Promise((r) => p.once("exit", r));
    assert.is(code, 0);
    assert.is(
      fake.get("leases", "meshtune-system", "meshtune-controller")!.spec.holderIdentity,
      undefined,
      "lease released on shutdown",
    );
  } finally {
    if (p.exitCode === null) p.kill("SIGKILL");
    await sidecar.stop();
    await fake.stop();
  }
});

test("SIGKILL loses at most --flush-delay of learning; a restarted leader with the same identity resumes at once", async () => {
  const { fake, kubeconfig: kc } = await fakeBookinfo();
  const port = 19700 + Math.floor(Math.random() * 100);
  const args = [
    CLI,
    "controller",
    "--kubeconfig",
    kc,
    "--port",
    String(port),
    "--token-port",
    "0",
    "--min-window",
    "1s",
    "--flush-delay",
    "1s",
    "--identity",
    "meshtune-controller-0",
    "--self",
    "meshtune-system/meshtune-controller",
  ];
  const sidecar = await new InboundProxy({
    appPort: port,
    self: "meshtune-system/meshtune-controller",
    peer: "bookinfo/bookinfo-reviews",
  }).start();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let p = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  try {
    for (
      let i = 0;
      i < 100 &&
      (await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.status,
        () => 0,
      )) !== 200;
      i++
    )
      await sleep(100);
    const r = await fetch(`${sidecar.url}/v1/reports`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(report({ unknown: [] })),
    });
    assert.is(r.status, 202, await r.text());
    const accepted = Date.now();
    // The documented bound: learned state is in the ConfigMap within --flush-delay (+ one save).
    for (
      let i = 0;
      i < 40 && !/ratings/.test(fake.get("configmaps", "bookinfo", "meshtune-learned")?.data?.["reviews-v2"] ?? "");
      i++
    )
      await sleep(50);
    assert.match(
      fake.get("configmaps", "bookinfo", "meshtune-learned")?.data?.["reviews-v2"] ?? "",
      /ratings\.bookinfo\.svc\.cluster\.local/,
    );
    assert.ok(
      Date.now() - accepted < 2000,
      `persisted ${Date.now() - accepted} ms after 202 (bound: flush delay 1 s + one save)`,
    );
    p.kill("SIGKILL");
    await new Promise((r) => p.once("exit", r));
    fake.remove("sidecars", "bookinfo", "reviews-v2");
    const t0 = Date.now();
    p = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    for (let i = 0; i < 100 && !fake.get("sidecars", "bookinfo", "reviews-v2"); i++) await sleep(100);
    const sc = fake.get("sidecars", "bookinfo", "reviews-v2");
    assert.ok(sc, "re-applied from persisted state, with no new report");
    assert.ok(sc!.spec.egress[0].hosts.includes("bookinfo/ratings.bookinfo.svc.cluster.local"));
    assert.ok(Date.now() - t0 < 5000, `resumed in ${Date.now() - t0} ms: its own lease, no expiry wait`);
  } finally {
    if (p.exitCode === null) p.kill("SIGKILL");
    await sidecar.stop();
    await fake.stop();
  }
});

test("bad flags are one-line usage errors", async () => {
  const p = spawn(process.execPath, [CLI, "controller", "--retention", "forever"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  p.stderr.on("data", (d) => (err += d));
  const code = await new Promise((r) => p.once("exit", r));
  assert.is(code, 2);
  assert.is(err.trim(), "meshtune: --retention forever: expected a duration like 30s, 15m, 2h or 7d");
});

test.run();

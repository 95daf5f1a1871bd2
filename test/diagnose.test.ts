// `meshtune diagnose` offline and the verdict rules on hand-made windows (the real-kernel
// acceptance is diagnose-faults.test.ts). Reports are built by the real filter on the
// proxy-wasm host; the agent report follows controller/collector/agent-report.ts.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { meshtune } from "./helpers/cli.js";
import { filterHost, request, bodyOf } from "./helpers/filter.js";
import { validateAgentReport } from "../controller/collector/agent-report.js";
import { DiagnoseStore } from "../controller/diagnose/store.js";
import { runDiagnose } from "../controller/diagnose/diagnose.js";

const CLUSTER = "outbound|8080||server.demo.svc.cluster.local";
const zeros = () => new Array(24).fill(0);

function reports(o: { total: number; up: number | null; sTotal: number; app: number | null; n?: number }) {
  const c = filterHost({}, { WORKLOAD_NAME: "client", NAMESPACE: "demo", NAME: "client-1" });
  const s = filterHost({}, { WORKLOAD_NAME: "server", NAMESPACE: "demo", NAME: "server-1" });
  for (let i = 0; i < (o.n ?? 20); i++) {
    c.http(request(CLUSTER, { host: "server:8080", ms: o.total, upMs: o.up }));
    s.http(request("inbound|8080||", { host: "server:8080", ms: o.sTotal, upMs: o.app }));
  }
  c.tick();
  s.tick();
  return [bodyOf(c), bodyOf(s)];
}

function agentReport(o: { srttUs?: number; retrans?: number; throttled?: number; endMs?: number }) {
  const remote = (dir: "out" | "in", ip: string, port: number) => ({
    dir,
    ip,
    port,
    rttSamples: 40,
    rttSumUs: 40 * (o.srttUs ?? 200),
    rttMinUs: 60,
    rttHist: zeros(),
    retrans: o.retrans ?? 0,
    connects: dir === "out" ? 1 : 0,
    connectFail: 0,
    connectSumUs: 90,
    connectHist: zeros(),
    accepts: dir === "in" ? 1 : 0,
  });
  const pressure = (throttled = 0) => ({
    cpuPeriods: throttled ? 50 : 0,
    cpuThrottled: throttled,
    cpuThrottledUs: throttled * 9000,
    cpuSomeUs: 0,
    memSomeUs: 0,
    oomKills: 0,
    runDelayUs: 0,
    runUs: 100_000,
    threads: 4,
  });
  return {
    v: 2,
    kind: "agent",
    node: "node-a",
    pods: [],
    kernel: {
      windowMs: 30_000,
      endMs: o.endMs ?? Date.now(),
      pods: [
        {
          namespace: "demo",
          name: "client-1",
          ips: ["10.1.0.5"],
          pressure: pressure(),
          remotes: [remote("out", "10.1.0.9", 8080)],
        },
        {
          namespace: "demo",
          name: "server-1",
          ips: ["10.1.0.9"],
          pressure: pressure(o.throttled),
          remotes: [remote("in", "10.1.0.5", 8080)],
        },
      ],
    },
  };
}

function dirs(files: Record<string, object>, kernel: Record<string, object | string>) {
  const r = mkdtempSync(join(tmpdir(), "mt-diag-r-")),
    k = mkdtempSync(join(tmpdir(), "mt-diag-k-"));
  for (const [n, v] of Object.entries(files)) writeFileSync(join(r, n), JSON.stringify(v));
  for (const [n, v] of Object.entries(kernel)) writeFileSync(join(k, n), typeof v === "string" ? v : JSON.stringify(v));
  return {
    r,
    k,
    done: () => {
      rmSync(r, { recursive: true });
      rmSync(k, { recursive: true });
    },
  };
}

test("offline: saved filter and agent reports → per-edge split and verdict (json and table)", () => {
  const [c, s] = reports({ total: 62, up: 60, sTotal: 58, app: 57 });
  // Offline, each report is placed at its own clock: the agent's window ends with the filters'.
  const d = dirs(
    { "c.json": c, "s.json": s },
    { "a.json": agentReport({ endMs: c.window.endMs }), "bad.json": "{not json" },
  );
  try {
    const r = meshtune(["diagnose", "--reports", d.r, "--kernel", d.k, "-o", "json"]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, /bad\.json: malformed JSON/);
    const e = JSON.parse(r.stdout).edges[0];
    assert.is(e.edge, "demo/client -> demo/server");
    assert.is(e.verdict, "app");
    assert.ok(Math.abs(e.components.app.meanUs - 57_000) < 1, JSON.stringify(e.components));
    assert.ok(Math.abs(e.components.clientProxy.meanUs - 2_000) < 1);
    assert.ok(Math.abs(e.components.network.meanUs - 2_000) < 1);
    assert.ok(Math.abs(e.components.serverProxy.meanUs - 1_000) < 1);
    assert.is(e.evidence.srttMeanUs, 200);
    const t = meshtune(["diagnose", "--reports", d.r, "--kernel", d.k, "--edge", "demo/client->demo/server"]);
    assert.match(
      t.stdout,
      /demo\/client -> demo\/server\s+20\s+62\s+2\.0\s+2\.0\s+1\.0\s+57\s+app\s+application time 57 ms/,
    );
  } finally {
    d.done();
  }
});

test("rules: throttled server → node-pressure; retransmits → network; v1 reports → unknown, fast or slow; healthy", () => {
  const at = Date.now();
  const run = (rep: object[], agent?: object) => {
    const st = new DiagnoseStore();
    for (const x of rep) st.addReport(x as never, at);
    if (agent) st.addKernel("node-a", (agent as { kernel: never }).kernel, at);
    return runDiagnose(st, { fromMs: at - 60_000, toMs: at })[0];
  };
  assert.is(
    run(reports({ total: 62, up: 60, sTotal: 58, app: 57 }), agentReport({ throttled: 30 })).verdict,
    "node-pressure",
  );
  // A starved server proxy's run-queue wait precedes its own timer: it shows as network time.
  const starved = run(reports({ total: 20, up: 19, sTotal: 2, app: 1 }), agentReport({ throttled: 30 }));
  assert.is(starved.verdict, "node-pressure", starved.rule);
  assert.match(
    starved.rule,
    /^network time 17 ms per request exceeds 5\.0 ms while the server pod's CPU is contended: .*throttled.*its wait shows as network/,
  );
  const slowWire = run(reports({ total: 20, up: 19, sTotal: 2, app: 1 }), agentReport({}));
  assert.is(slowWire.verdict, "network", "no pressure on the server pod: the network it is");
  const memOnly = agentReport({}) as unknown as { kernel: { pods: { pressure: Record<string, number> }[] } };
  memOnly.kernel.pods[1].pressure.memSomeUs = 20_000_000;
  memOnly.kernel.pods[1].pressure.oomKills = 1;
  const notCpu = run(reports({ total: 20, up: 19, sTotal: 2, app: 1 }), memOnly);
  assert.is(notCpu.verdict, "network", `memory pressure does not delay a proxy's timer: ${notCpu.rule}`);
  const lossy = run(reports({ total: 3, up: 2.5, sTotal: 1.2, app: 1 }), agentReport({ retrans: 9 }));
  assert.is(lossy.verdict, "network");
  assert.match(lossy.rule, /18 retransmits for 80 RTT samples/, "both ends' retransmits");
  assert.is(run(reports({ total: 3, up: 2.5, sTotal: 1.2, app: 1 }), agentReport({})).verdict, "healthy");
  assert.is(
    run(reports({ total: 3, up: 2.5, sTotal: 1.2, app: 1 })).verdict,
    "healthy",
    "no kernel data: timings alone",
  );
  const v1 = reports({ total: 90, up: null, sTotal: 85, app: null });
  const u = run(v1);
  assert.is(u.verdict, "unknown");
  assert.match(u.rule, /no upstream time/);
  const fastV1 = run(reports({ total: 3, up: null, sTotal: 1.2, app: null }));
  assert.is(fastV1.verdict, "unknown", "a fast v1-only edge is not shown healthy: nothing split it");
  assert.match(fastV1.rule, /total 3\.0 ms mean, but v1 reports carry no upstream time/);
});

test("a client with kernel signals and no proxy timings (an ambient pod): the network judged from the kernel, the rest said to be unknown", () => {
  const at = Date.now();
  const run = (retrans: number) => {
    const st = new DiagnoseStore();
    st.addKernel("node-a", (agentReport({ retrans }) as unknown as { kernel: never }).kernel, at);
    return runDiagnose(st, { fromMs: at - 60_000, toMs: at });
  };
  // No reports name the pods' workloads: the pod-name rule does (client-1 → client).
  const calm = run(0).find((d) => d.client === "demo/client")!;
  assert.ok(calm, "the edge exists from the kernel view alone");
  assert.is(calm.server, "demo/server", "server found by the pod IP the client's sockets reached");
  assert.is(calm.verdict, "unknown");
  assert.match(calm.rule, /kernel view only: smoothed RTT 200 µs, no loss; no proxy timings for this client/);
  const lossy = run(9).find((d) => d.client === "demo/client")!;
  assert.is(lossy.verdict, "network");
  assert.match(lossy.rule, /18 retransmits for 80 RTT samples: packets are being lost.*no proxy timings/);
});

test("agent kernel sections are schema-checked: a forged histogram or pressure field is refused with its path", () => {
  const good = agentReport({});
  assert.ok(validateAgentReport(good).ok);
  const bad = JSON.parse(JSON.stringify(good));
  bad.kernel.pods[0].remotes[0].rttHist = [1, 2];
  const r = validateAgentReport(bad);
  assert.not.ok(r.ok);
  assert.match((r as { detail: string }).detail, /rttHist/);
  const extra = JSON.parse(JSON.stringify(good));
  extra.kernel.pods[0].pressure.evil = 1;
  assert.not.ok(validateAgentReport(extra).ok);
});

test("diagnose usage errors are one line with exit 2", () => {
  assert.is(meshtune(["diagnose"]).code, 2);
  const r = meshtune(["diagnose", "--reports", "/nonexistent", "--edge", "nonsense"]);
  assert.is(r.code, 2);
  assert.match(r.stderr, /--edge nonsense: expected NS\/CLIENT->NS\/SERVER/);
});

test.run();

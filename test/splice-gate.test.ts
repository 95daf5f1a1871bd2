// The agent's side of the splice gate: the kernel closes it (test/bpf-datapath.test.ts drives the
// real EBUSY); here, what the agent publishes from what `meshtune-bpf pods` answers to `gate`.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { SpliceGateWatch } from "../controller/agent/splice-gate.js";
import type { Reply } from "../controller/agent/datapath.js";
import type { Verdict } from "../controller/node/features.js";
import { meshtune } from "./helpers/cli.js";

function watch(replies: Reply[]) {
  const seen: Verdict[] = [];
  const sent: string[] = [];
  const foreign: string[] = [];
  const w = new SpliceGateWatch(
    async (l) => {
      sent.push(l);
      return replies.shift() ?? { ok: false, error: "no more replies" };
    },
    (v) => seen.push(v),
    (what) => foreign.push(what),
  );
  return { w, seen, sent, foreign };
}

const REASON = "another program holds the psock of a socket meshtune would splice (EBUSY)";

test("open at start says nothing; closed by the kernel: splice off with its reason, once; reopened: on again", async () => {
  const { w, seen, sent } = watch([
    { ok: true, gate: { open: true } },
    { ok: true, gate: { open: false, reason: REASON } },
    { ok: true, gate: { open: false, reason: REASON } },
    { ok: true, gate: { open: true } },
  ]);
  for (let i = 0; i < 4; i++) await w.check();
  assert.equal(sent, ["gate", "gate", "gate", "gate"]);
  assert.equal(seen, [{ ok: false, reason: `splice gate closed: ${REASON}` }, { ok: true }]);
});

test("an agent restarted after the gate closed publishes it on its first look", async () => {
  const { w, seen } = watch([{ ok: true, gate: { open: false, reason: REASON } }]);
  await w.check();
  assert.is(seen.length, 1);
  assert.is(seen[0].ok, false);
});

test("loader errors and malformed answers change nothing (the next look retries)", async () => {
  const { w, seen } = watch([
    { ok: false, error: "loader 'pods' process exited" },
    { ok: true, gate: null },
    { ok: true, gate: { open: "no" } },
    { ok: true },
    { ok: true, gate: { open: false, reason: REASON } },
  ]);
  for (let i = 0; i < 5; i++) await w.check();
  assert.equal(seen, [{ ok: false, reason: `splice gate closed: ${REASON}` }]);
});

const LATER = "another program was attached where meshtune attaches, or to a sockmap, after load";
const FOUND = "other BPF programs attached where meshtune would attach: sock_ops cilium_sockops (id 91)";

test("recheck: nothing found says nothing; found: named once, and the gate it closed is published", async () => {
  const { w, seen, sent, foreign } = watch([
    { ok: true, foreign: null },
    { ok: true, foreign: FOUND, gate: { open: false, reason: LATER } },
    { ok: true, foreign: FOUND, gate: { open: false, reason: LATER } },
    { ok: true, gate: { open: false, reason: LATER } },
  ]);
  await w.recheck();
  assert.equal([seen, foreign], [[], []]);
  await w.recheck();
  await w.recheck();
  await w.check();
  assert.equal(sent, ["recheck", "recheck", "recheck", "gate"]);
  assert.equal(foreign, [FOUND], "named once, not every 30 s");
  assert.equal(seen, [{ ok: false, reason: `splice gate closed: ${LATER}` }], "one change, one publish");
});

test("the agent refuses a zero interval for any of its timers, with one line", () => {
  for (const flag of ["--resync", "--report-interval", "--recheck-interval"]) {
    const r = meshtune(["agent", "--node", "n", "--cgroup", "/sys/fs/cgroup/unified", flag, "0s"]);
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr.trim(), `meshtune: ${flag}: must be longer than 0`);
  }
});

test.run();

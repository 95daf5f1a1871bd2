// Two `meshtune controller` processes against the fake API server (test double): both become
// Ready after their own sync (a 2-replica rollout completes); a report posted to the standby is
// forwarded and answered 202 only once the leader has it; the leader applies the Sidecar; when
// the leader is killed the standby takes over within the lease duration and keeps applying.
// Every replica sits behind its sidecar (InboundProxy double): filters reach it with their mesh
// identity, and a standby reaches the leader with the controller's own identity.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { CLI } from "./helpers/cli.js";
import { report } from "./fixtures/report.js";
import { deploymentPod } from "./fixtures/pods.js";
import { InboundProxy } from "./istio/inbound-proxy.js";
import { fakeBookinfo } from "./helpers/fake-cluster.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("HA: both replicas Ready; standby forwards to the leader; takeover after the leader dies", async () => {
  const { fake, kubeconfig: kc } = await fakeBookinfo();
  fake.put("pods", deploymentPod("bookinfo", "details-v1", "79f774bdb9", "kx7lq", { app: "details", version: "v1" }));
  const base = 19900 + Math.floor(Math.random() * 50) * 2;
  const procs: ChildProcess[] = [];
  const logs = ["", ""];
  const self = "meshtune-system/meshtune-controller";
  const fromPeers = await Promise.all(
    [0, 1].map((i) => new InboundProxy({ appPort: base + i, self, peer: self }).start()),
  );
  const fromReviews = await Promise.all(
    [0, 1].map((i) => new InboundProxy({ appPort: base + i, self, peer: "bookinfo/bookinfo-reviews" }).start()),
  );
  const fromDetails = await Promise.all(
    [0, 1].map((i) => new InboundProxy({ appPort: base + i, self, peer: "bookinfo/bookinfo-details" }).start()),
  );
  const start = (i: number) => {
    const port = base + i;
    const p = spawn(
      process.execPath,
      [
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
        "--advertise-url",
        fromPeers[i].url,
        "--identity",
        `replica-${i}`,
        "--self",
        self,
        "--lease-duration",
        "3s",
        "--renew-deadline",
        "2s",
        "--retry-period",
        "500ms",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    p.stderr!.on("data", (d) => (logs[i] += d));
    procs.push(p);
  };
  const url = (i: number, path: string) => `http://127.0.0.1:${base + i}${path}`;
  const post = (i: number, workload: string) => {
    const now = Date.now();
    return fetch(`${(workload === "reviews-v2" ? fromReviews : fromDetails)[i].url}/v1/reports`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(
        report({ proxy: { workload, namespace: "bookinfo" }, window: { startMs: now - 60_000, endMs: now } }),
      ),
    });
  };
  try {
    start(0);
    for (let i = 0; i < 100 && !fake.get("leases", "meshtune-system", "meshtune-controller"); i++) await sleep(50);
    start(1);
    const ready = async (i: number) => {
      for (let k = 0; k < 100; k++) {
        if (
          (await fetch(url(i, "/readyz")).then(
            (r) => r.status,
            () => 0,
          )) === 200
        )
          return true;
        await sleep(100);
      }
      return false;
    };
    assert.ok(await ready(0), logs[0]);
    assert.ok(await ready(1), "the standby is Ready too: " + logs[1]);
    const holder = fake.get("leases", "meshtune-system", "meshtune-controller")!;
    assert.is(holder.metadata.annotations["meshtune.io/collector-url"], fromPeers[0].url);
    const r = await post(1, "reviews-v2");
    assert.is(r.status, 202, await r.text());
    for (let i = 0; i < 60 && !fake.get("sidecars", "bookinfo", "reviews-v2"); i++) await sleep(100);
    assert.ok(fake.get("sidecars", "bookinfo", "reviews-v2"), "leader applied what the standby received: " + logs[0]);
    assert.match(await (await fetch(url(1, "/metrics"))).text(), /meshtune_reports_forwarded_total 1/);
    // The leader dies without releasing the lease; the standby takes over within the lease duration.
    procs[0].kill("SIGKILL");
    const t0 = Date.now();
    let st = 0;
    for (let i = 0; i < 80 && st !== 202; i++) {
      await sleep(100);
      st = (await post(1, "details-v1").catch(() => null))?.status ?? 0;
    }
    assert.is(st, 202, logs[1]);
    assert.ok(Date.now() - t0 < 5_000, `took over in ${Date.now() - t0} ms`);
    for (let i = 0; i < 60 && !fake.get("sidecars", "bookinfo", "details-v1"); i++) await sleep(100);
    assert.ok(fake.get("sidecars", "bookinfo", "details-v1"), logs[1]);
    assert.not.match(logs[1], /"level":"(error|fatal)"/);
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    for (const x of [...fromPeers, ...fromReviews, ...fromDetails]) await x.stop();
    await fake.stop();
  }
});

test.run();

// Two `meshtune controller` processes against a real kube-apiserver, each with a token of the
// manifests' meshtune-controller ServiceAccount (a real Lease, RBAC from manifests/rbac.yaml):
// both become Ready after their own sync (a 2-replica rollout completes); a report posted to the
// standby is forwarded and answered 202 only once the leader has it; the leader applies the
// Sidecar; when the leader is killed the standby takes over after the lease expires and keeps
// applying. Every replica sits behind its sidecar (InboundProxy double, test/istio: no Envoy runs
// here): filters reach it with their mesh identity, and a standby reaches the leader with the
// controller's own identity.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { CLI } from "./helpers/cli.js";
import { report } from "./fixtures/report.js";
import { deploymentPod } from "./fixtures/pods.js";
import { InboundProxy } from "./istio/inbound-proxy.js";
import { realApiServer } from "./helpers/kube-apiserver.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("HA: both replicas Ready; standby forwards to the leader; takeover after the leader dies", async () => {
  const k = await realApiServer();
  k.installManifests();
  // Its own namespace and pod names: other test files of the run use bookinfo and the sample's pods.
  const NS = "ha-books";
  k.kubectl(["create", "namespace", NS]);
  k.kubectl(["label", "namespace", NS, "meshtune.io/enabled=true"]);
  for (const [w, h, sfx, app, v] of [
    ["reviews-v2", "5c6d7e8f9a", "hha01", "reviews", "v2"],
    ["details-v1", "6b7c8d9e0f", "hha02", "details", "v1"],
  ]) {
    k.kubectl(["create", "serviceaccount", `${NS}-${app}`, "-n", NS]);
    k.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({ apiVersion: "v1", kind: "Pod", ...deploymentPod(NS, w, h, sfx, { app, version: v }) }),
    );
  }
  k.kubectl(["delete", "lease", "meshtune-controller", "-n", "meshtune-system", "--ignore-not-found"]);
  const kc = k.kubeconfigFor(k.token("meshtune-system", "meshtune-controller"), "meshtune-controller-ha");
  const lease = () => {
    try {
      return JSON.parse(k.kubectl(["get", "lease", "meshtune-controller", "-n", "meshtune-system", "-o", "json"]));
    } catch {
      return null;
    }
  };
  const sidecar = (name: string) => {
    try {
      return JSON.parse(k.kubectl(["get", "sidecar.networking.istio.io", name, "-n", NS, "-o", "json"]));
    } catch {
      return null;
    }
  };
  const base = 19900 + Math.floor(Math.random() * 50) * 2;
  const procs: ChildProcess[] = [];
  const logs = ["", ""];
  const self = "meshtune-system/meshtune-controller";
  const fromPeers = await Promise.all(
    [0, 1].map((i) => new InboundProxy({ appPort: base + i, self, peer: self }).start()),
  );
  const fromReviews = await Promise.all(
    [0, 1].map((i) => new InboundProxy({ appPort: base + i, self, peer: `${NS}/${NS}-reviews` }).start()),
  );
  const fromDetails = await Promise.all(
    [0, 1].map((i) => new InboundProxy({ appPort: base + i, self, peer: `${NS}/${NS}-details` }).start()),
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
        report({ proxy: { workload, namespace: NS }, window: { startMs: now - 60_000, endMs: now } }),
      ),
    });
  };
  try {
    start(0);
    for (let i = 0; i < 100 && !lease(); i++) await sleep(100);
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
    const holder = lease()!;
    assert.is(holder.metadata.annotations["meshtune.io/collector-url"], fromPeers[0].url);
    const r = await post(1, "reviews-v2");
    assert.is(r.status, 202, await r.text());
    for (let i = 0; i < 100 && !sidecar("reviews-v2"); i++) await sleep(100);
    assert.ok(sidecar("reviews-v2"), "leader applied what the standby received: " + logs[0]);
    assert.match(await (await fetch(url(1, "/metrics"))).text(), /meshtune_reports_forwarded_total 1/);
    // The leader dies without releasing the lease; the standby takes over within the lease duration.
    procs[0].kill("SIGKILL");
    const t0 = Date.now();
    let st = 0;
    for (let i = 0; i < 200 && st !== 202; i++) {
      await sleep(100);
      st = (await post(1, "details-v1").catch(() => null))?.status ?? 0;
    }
    assert.is(st, 202, logs[1]);
    console.log(`  took over in ${Date.now() - t0} ms (lease 3 s)`);
    for (let i = 0; i < 100 && !sidecar("details-v1"); i++) await sleep(100);
    assert.ok(sidecar("details-v1"), logs[1]);
    const denied = k.audited("system:serviceaccount:meshtune-system:meshtune-controller").filter((a) => a.code === 403);
    assert.equal(denied, [], JSON.stringify(denied));
    assert.not.match(logs[1], /"level":"(error|fatal)"/);
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    for (const x of [...fromPeers, ...fromReviews, ...fromDetails]) await x.stop();
  }
});

test.run();

// The controller against a flaky API server (fake API server fault rules: statuses, delays,
// dropped watches, 410 Gone): leadership like client-go, learned state never lost to a failed
// save, informers that recover, and Sidecar conflicts resolved in the user's favour (IST0110).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Registry } from "prom-client";
import { FakeApiServer } from "./k8s/fake-apiserver.js";
import { loadKubeConfig, objectApi } from "../controller/k8s/kube.js";
import { LeaderElector } from "../controller/k8s/leader.js";
import { LearnedStore, STORE_NAME } from "../controller/k8s/learned-store.js";
import { MeshController } from "../controller/reconcile/controller.js";
import { Collector } from "../controller/collector/server.js";
import { Graph } from "../controller/model/graph.js";
import { DEFAULT_SCOPE } from "../controller/sidecar/scope.js";
import { deploymentPod } from "./fixtures/pods.js";
import { report } from "./fixtures/report.js";

const quiet = () => {};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (f: () => boolean, ms = 5000) => {
  const t = Date.now();
  while (!f() && Date.now() - t < ms) await sleep(20);
  return f();
};

test("leadership: a 6 s Lease latency, a 500, a 409 are tolerated; a hung API deposes the leader at its renew deadline", async () => {
  const fake = await new FakeApiServer().start();
  try {
    const api = objectApi(loadKubeConfig({ yaml: fake.kubeconfig() }));
    // Real clock: the renew deadline bounds each round (client-go RenewDeadline context).
    const a = new LeaderElector(api, {
      namespace: "meshtune-system",
      name: "meshtune-controller",
      identity: "a",
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
    });
    assert.is(await a.tick(), true);
    fake.fault({ method: "GET", path: "/leases/", delayMs: 6000 });
    const t0 = Date.now();
    assert.is(await a.tick(), true, "a slow (6 s) renewal still renews");
    assert.ok(Date.now() - t0 >= 5900);
    fake.fault({ method: "GET", path: "/leases/", status: 500 });
    assert.is(await a.tick(), true, "one 500 tolerated");
    fake.fault({ method: "PUT", path: "/leases/", status: 409 });
    assert.is(await a.tick(), true, "one 409 tolerated");
    // The API hangs: the round is abandoned at the renew deadline and the leader steps down.
    const short = new LeaderElector(api, {
      namespace: "meshtune-system",
      name: "other-lease",
      identity: "s",
      leaseDurationMs: 1500,
      renewDeadlineMs: 1000,
    });
    assert.is(await short.tick(), true);
    fake.fault({ method: "GET", path: "/other-lease", delayMs: 3000, times: 5 });
    const t1 = Date.now();
    assert.is(await short.tick(), false, "hung renewal: not leader any more");
    assert.ok(Date.now() - t1 < 1500, `gave up after ${Date.now() - t1} ms`);
    await sleep(2100); // the late answer of the abandoned round must not make it leader again
    assert.is(short.leader, false);
  } finally {
    await fake.stop();
  }
});

async function controller(fake: FakeApiServer, o: { flushDelayMs?: number } = {}) {
  const kc = loadKubeConfig({ yaml: fake.kubeconfig() });
  const api = objectApi(kc);
  const graph = new Graph();
  const registry = new Registry();
  const ctl = new MeshController(
    kc,
    api,
    graph,
    new LearnedStore(api, quiet),
    {
      mode: "apply",
      minWindowMs: 0,
      retentionMs: 1e9,
      fallback: { host: "meshtune-fallback.meshtune-system.svc.cluster.local", port: 80 },
      scope: { ...DEFAULT_SCOPE, meshtuneHosts: ["meshtune-controller.meshtune-system.svc.cluster.local"] },
      defaultEnabled: true,
      dryRun: false,
      clusterDomain: "cluster.local",
      flushDelayMs: o.flushDelayMs ?? 50,
    },
    quiet,
    registry,
  );
  ctl.leading = true;
  const col = new Collector(graph, registry, { auth: null });
  col.onMerged = (ns, w) => ctl.touched(ns, w);
  return { ctl, col, registry };
}

test("a failed learned-state save is retried with backoff until it lands, with no further reports", async () => {
  const fake = await new FakeApiServer().start();
  fake.put("namespaces", { metadata: { name: "bookinfo" } });
  fake.put("pods", deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" }));
  const { ctl, col, registry } = await controller(fake);
  try {
    await ctl.start();
    // A save reads the stored ConfigMap first (read-merge-replace): fail that read twice.
    fake.fault({ method: "GET", path: `/configmaps/${STORE_NAME}`, status: 500, times: 2 });
    assert.is(col.ingest(JSON.stringify(report({ unknown: [] }))), null);
    assert.ok(await until(() => !!fake.get("configmaps", "bookinfo", STORE_NAME), 8000), "saved after two failures");
    assert.match(
      fake.get("configmaps", "bookinfo", STORE_NAME)!.data["reviews-v2"],
      /ratings\.bookinfo\.svc\.cluster\.local/,
    );
    assert.match(await registry.getSingleMetricAsString("meshtune_learned_save_errors_total"), / 2$/m);
  } finally {
    await ctl.stop();
    await fake.stop();
  }
});

test("informers survive dropped watches and 410 Gone; API 500s during reconcile are retried", async () => {
  const fake = await new FakeApiServer().start();
  fake.put("namespaces", { metadata: { name: "bookinfo" } });
  const { ctl, col } = await controller(fake);
  try {
    await ctl.start();
    fake.fault({ path: "/pods", watch: true, status: 410, times: 1 });
    fake.dropWatches();
    await sleep(1500); // informers re-list and re-watch (one 410 on the way)
    fake.put("pods", deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" }));
    assert.ok(await until(() => ctl.pods.has("bookinfo/reviews-v2"), 8000), "pod seen after the watch came back");
    fake.fault({ method: "PATCH", path: "/sidecars/", status: 500, times: 2 });
    assert.is(col.ingest(JSON.stringify(report({ unknown: [] }))), null);
    assert.ok(await until(() => !!fake.get("sidecars", "bookinfo", "reviews-v2"), 8000), "applied after retries");
  } finally {
    await ctl.stop();
    await fake.stop();
  }
});

test("a user Sidecar that starts selecting a managed workload: meshtune deletes its own and says so in an Event", async () => {
  const fake = await new FakeApiServer().start();
  fake.put("namespaces", { metadata: { name: "bookinfo" } });
  fake.put("pods", deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" }));
  const { ctl, col } = await controller(fake);
  try {
    await ctl.start();
    assert.is(col.ingest(JSON.stringify(report({ unknown: [] }))), null);
    assert.ok(await until(() => !!fake.get("sidecars", "bookinfo", "reviews-v2")));
    fake.put("sidecars", {
      metadata: { name: "team-reviews", namespace: "bookinfo" },
      spec: { workloadSelector: { labels: { app: "reviews" } }, egress: [{ hosts: ["./*"] }] },
    });
    assert.ok(await until(() => !fake.get("sidecars", "bookinfo", "reviews-v2")), "own Sidecar deleted");
    assert.ok(fake.get("sidecars", "bookinfo", "team-reviews"), "the user's is untouched");
    // The Event is posted after the delete lands: wait for it rather than race it.
    await until(() => fake.list("events", "bookinfo").some((e) => e.reason === "Deleted"));
    const ev = fake.list("events", "bookinfo").find((e) => e.reason === "Deleted");
    assert.match(ev?.message ?? "", /user-owned Sidecar bookinfo\/team-reviews now selects this workload .*IST0110/);
    // The user's Sidecar goes: meshtune's comes back (the view forgets user Sidecars on delete).
    fake.remove("sidecars", "bookinfo", "team-reviews");
    assert.ok(await until(() => !!fake.get("sidecars", "bookinfo", "reviews-v2")), "own Sidecar re-applied");
  } finally {
    await ctl.stop();
    await fake.stop();
  }
});

test.run();

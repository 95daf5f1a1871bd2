// Issue 23, "learning never freezes; nothing accepted is lost": each case lost or froze learned
// state on f898273. Against the fake API server with its fault rules (statuses, delays).
// Item numbers refer to issue 23.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Registry } from "prom-client";
import { FakeApiServer } from "../k8s/fake-apiserver.js";
import { loadKubeConfig, objectApi } from "../../controller/k8s/kube.js";
import { LeaderElector } from "../../controller/k8s/leader.js";
import { LearnedStore, STORE_NAME, decode } from "../../controller/k8s/learned-store.js";
import { Collector } from "../../controller/collector/server.js";
import { DiagnoseStore } from "../../controller/diagnose/store.js";
import { deploymentPod } from "../fixtures/pods.js";
import { report } from "../fixtures/report.js";
import { inProcessController } from "../helpers/in-process-controller.js";

const quiet = () => {};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (f: () => boolean, ms = 8000) => {
  const t = Date.now();
  while (!f() && Date.now() - t < ms) await sleep(20);
  return f();
};
const seen = (t: number) => ({ firstSeenMs: t, lastSeenMs: t });

test("item 17: a deposed leader's save merges into the newer state instead of overwriting it", async () => {
  const fake = await new FakeApiServer().start();
  try {
    const api = objectApi(loadKubeConfig({ yaml: fake.kubeconfig() }));
    const deposed = new LearnedStore(api, quiet);
    const leader = new LearnedStore(api, quiet);
    deposed.merge(
      "bookinfo",
      "reviews-v2",
      1000,
      new Map([["bookinfo/ratings.bookinfo.svc.cluster.local", seen(1000)]]),
    );
    leader.merge(
      "bookinfo",
      "reviews-v2",
      1000,
      new Map([["bookinfo/details.bookinfo.svc.cluster.local", seen(2000)]]),
    );
    leader.merge(
      "bookinfo",
      "productpage-v1",
      1500,
      new Map([["bookinfo/reviews.bookinfo.svc.cluster.local", seen(2000)]]),
    );
    await leader.saveDirty();
    await deposed.saveDirty(); // the late write of a replica that no longer leads
    const cm = fake.get("configmaps", "bookinfo", STORE_NAME)!;
    assert.equal([...decode(cm.data["reviews-v2"]).hosts.keys()].sort(), [
      "bookinfo/details.bookinfo.svc.cluster.local",
      "bookinfo/ratings.bookinfo.svc.cluster.local",
    ]);
    assert.ok(cm.data["productpage-v1"], "the new leader's other workload survives");
    // A write racing another (409 on the stale resourceVersion) is redone on the fresh object.
    leader.merge(
      "bookinfo",
      "reviews-v2",
      1000,
      new Map([["bookinfo/reviews.bookinfo.svc.cluster.local", seen(3000)]]),
    );
    fake.fault({ method: "PUT", path: `/configmaps/${STORE_NAME}`, status: 409, times: 1 });
    await leader.saveDirty();
    const after = decode(fake.get("configmaps", "bookinfo", STORE_NAME)!.data["reviews-v2"]);
    assert.is(after.hosts.size, 3);
  } finally {
    await fake.stop();
  }
});

test("items 17 and 18: a leader that cannot renew stops being sure at half its renew deadline, and never names itself leader after losing", async () => {
  const fake = await new FakeApiServer().start();
  try {
    const api = objectApi(loadKubeConfig({ yaml: fake.kubeconfig() }));
    let now = 1_000_000;
    const e = new LeaderElector(api, {
      namespace: "meshtune-system",
      name: "meshtune-controller",
      identity: "a",
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      collectorUrl: "http://10.0.0.1:8080",
      now: () => now,
    });
    assert.ok(await e.tick());
    assert.ok(e.sure());
    assert.is(e.leaderUrl, "http://10.0.0.1:8080");
    fake.fault({ path: "/leases/", status: 500, times: 100 });
    now += 4_000;
    assert.ok(await e.tick(), "still leader within the renew deadline (client-go)");
    assert.ok(e.sure(), "and sure, within half of it");
    now += 2_000;
    assert.ok(await e.tick());
    assert.not.ok(e.sure(), "past half the deadline: no more 202s from this replica");
    now += 5_000;
    assert.not.ok(await e.tick(), "deposed at the renew deadline");
    assert.is(e.leaderUrl, null, "its own URL is no longer taken for the leader's");
  } finally {
    await fake.stop();
  }
});

test("item 20: with every Sidecar write refused (422), learned state is still saved", async () => {
  const fake = await new FakeApiServer().start();
  fake.put("namespaces", { metadata: { name: "bookinfo" } });
  fake.put("pods", deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" }));
  const { ctl, graph } = inProcessController(fake.kubeconfig(), {
    mode: "apply",
    dryRun: false,
    flushDelayMs: 50,
  });
  ctl.leading = true;
  const col = new Collector(graph, new Registry(), { auth: null });
  col.onMerged = (ns, w) => ctl.touched(ns, w);
  try {
    await ctl.start();
    await sleep(300); // past the start-up reconcile's own flush: only a report's reconcile can save now
    fake.fault({ method: "PATCH", path: "/sidecars/", status: 422, times: 1000 });
    assert.is(col.ingest(JSON.stringify(report({ unknown: [] }))), null);
    assert.ok(await until(() => !!fake.get("configmaps", "bookinfo", STORE_NAME)), "learned state saved");
    assert.match(fake.get("configmaps", "bookinfo", STORE_NAME)!.data["reviews-v2"], /ratings\.bookinfo/);
    assert.not.ok(fake.get("sidecars", "bookinfo", "reviews-v2"), "the Sidecar write was indeed refused");
  } finally {
    await ctl.stop();
    await fake.stop();
  }
});

test("item 19: a silently stalled watch is repaired by the periodic relist; meanwhile the new workload's reports are retryable", async () => {
  const fake = await new FakeApiServer().start();
  fake.put("namespaces", { metadata: { name: "bookinfo" } });
  fake.put("pods", deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" }));
  const { ctl } = inProcessController(fake.kubeconfig(), { relistMs: 1500 });
  try {
    await ctl.start();
    // Every pod watch from now on hangs without a byte: the connection is open, nothing arrives.
    fake.fault({ path: "/pods", watch: true, delayMs: 120_000, times: 1000 });
    fake.dropWatches();
    await sleep(200);
    fake.put("pods", deploymentPod("bookinfo", "ratings-v1", "5d8c9b8d6f", "q2x9z", { app: "ratings", version: "v1" }));
    const caller = {
      namespace: "bookinfo",
      serviceAccount: "bookinfo-ratings",
      user: { username: "u", groups: [] },
      via: "mesh" as const,
    };
    const early = ctl.bindCaller(caller, "bookinfo", "ratings-v1");
    assert.equal(
      [early?.status, early?.reason],
      [503, "unknown-workload"],
      "retryable while the informer has not seen it",
    );
    assert.ok(
      await until(() => ctl.bindCaller(caller, "bookinfo", "ratings-v1") === null, 8000),
      "seen after a relist",
    );
  } finally {
    await ctl.stop();
    await fake.stop();
  }
});

test("item 13: the diagnose store is bounded per workload and in total, across windows; excess is counted", () => {
  const st = new DiagnoseStore(60_000, 3_600_000, 3_000, 500);
  const flood = (workload: string, n: number, offset = 0) =>
    report({
      proxy: { workload, namespace: "evil", pod: `${workload}-x`, node: "n", mesh: "cluster.local" },
      edges: Array.from({ length: n }, (_, i) => ({
        dir: "outbound",
        cluster: `outbound|80||h${i + offset}.evil.svc.cluster.local`,
        count: 1,
        latency: { bounds: "meshtune-v1", buckets: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], sumUs: 1 },
      })),
    }) as never;
  for (let w = 0; w < 20; w++) st.addReport(flood("flooder", 5_000, w * 5_000), w * 60_000);
  const held = st.select(0, 20 * 60_000).edges.length;
  assert.ok(held <= 3_000, `${held} edges held`);
  assert.ok(st.dropped.workloadShare > 0 && st.dropped.edges > 0);
  // One identity's flood filled its share per window, never another's.
  const st2 = new DiagnoseStore(60_000, 3_600_000, 50_000, 500);
  st2.addReport(flood("flooder", 5_000), 0);
  st2.addReport(flood("victim", 10), 0);
  assert.is(st2.select(0, 60_000).edges.filter((e) => e.workload === "evil/victim").length, 10);
});

test.run();

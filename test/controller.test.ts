// The controller against the fake API server (a documented test double: test/k8s/fake-apiserver.ts),
// so @kubernetes/client-node's real discovery, list/watch, server-side apply and Lease updates run.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Registry } from "prom-client";
import { FakeApiServer } from "./k8s/fake-apiserver.js";
import { loadKubeConfig, objectApi } from "../controller/k8s/kube.js";
import { LearnedStore, STORE_NAME, decode, encode } from "../controller/k8s/learned-store.js";
import { LeaderElector } from "../controller/k8s/leader.js";
import { MeshController, hostDiff } from "../controller/reconcile/controller.js";
import { Graph } from "../controller/model/graph.js";
import { Collector } from "../controller/collector/server.js";
import { report } from "./fixtures/report.js";
import { deploymentPod } from "./fixtures/pods.js";
import { DEFAULT_SCOPE, DEFAULT_COLLECTOR_HOST } from "../controller/sidecar/scope.js";

const H = 3600_000;
const NOW = Date.parse("2026-11-21T12:00:00Z");
const FALLBACK = { host: "meshtune-fallback.meshtune-system.svc.cluster.local", port: 80 };
const quiet = () => {};
// Every applied Sidecar keeps meshtune's own services in scope (collector; egressProxy target).
const MESHTUNE_IMPORTS = [
  "meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local",
  "meshtune-system/meshtune-fallback.meshtune-system.svc.cluster.local",
];

async function setup(o: { dryRun?: boolean; mode?: "apply" | "recommend"; now?: number } = {}) {
  const fake = await new FakeApiServer().start();
  fake.put("namespaces", { metadata: { name: "bookinfo", labels: { "meshtune.io/enabled": "true" } } });
  fake.put("namespaces", { metadata: { name: "legacy" } });
  for (const svc of ["ratings", "details", "reviews", "productpage"])
    fake.put("services", {
      metadata: { name: svc, namespace: "bookinfo" },
      spec: { clusterIP: "10.96.0.10", ports: [{ name: "http", port: 9080 }] },
    });
  fake.put("serviceentries", {
    metadata: { name: "stripe", namespace: "shop" },
    spec: { hosts: ["api.stripe.com"], ports: [{ number: 443, name: "tls", protocol: "TLS" }] },
  });
  fake.put("pods", deploymentPod("bookinfo", "reviews-v2", "7bf8c9648f", "2lcgn", { app: "reviews", version: "v2" }));
  fake.put(
    "pods",
    deploymentPod("bookinfo", "productpage-v1", "6987489c74", "6fgz8", { app: "productpage", version: "v1" }),
  );
  fake.put("pods", deploymentPod("legacy", "old-app", "6c7d8f9b4", "q7xw2", { app: "old-app" }));
  const kc = loadKubeConfig({ yaml: fake.kubeconfig() });
  const api = objectApi(kc);
  const graph = new Graph();
  const store = new LearnedStore(api, quiet);
  let now = o.now ?? NOW;
  const ctl = new MeshController(
    kc,
    api,
    graph,
    store,
    {
      mode: o.mode ?? "apply",
      minWindowMs: H,
      retentionMs: 7 * 24 * H,
      fallback: FALLBACK,
      scope: { ...DEFAULT_SCOPE, meshtuneHosts: [DEFAULT_COLLECTOR_HOST, FALLBACK.host] },
      defaultEnabled: false,
      dryRun: o.dryRun ?? false,
      clusterDomain: "cluster.local",
      now: () => now,
      flushDelayMs: 10,
    },
    quiet,
    new Registry(),
  );
  ctl.leading = true; // these tests drive one replica as the leader; HA is tested in controller-ha.test.ts
  // Simulated history: each report is received (collector clock) at the end of its window.
  let receivedAt = now;
  const col = new Collector(graph, undefined, { auth: null, now: () => receivedAt });
  const send = (over: Record<string, unknown>) => {
    const p = over.proxy as { namespace: string; workload: string };
    receivedAt = (over.window as { endMs?: number } | undefined)?.endMs ?? now;
    assert.is(col.ingest(JSON.stringify(report(over))), null);
    ctl.touched(p.namespace, p.workload);
  };
  return {
    fake,
    api,
    graph,
    store,
    ctl,
    send,
    setNow: (t: number) => {
      now = t;
    },
    close: async () => {
      await ctl.stop();
      await fake.stop();
    },
  };
}

const reviewsReport = (startMs: number) => ({
  proxy: { workload: "reviews-v2", namespace: "bookinfo" },
  window: { startMs, endMs: startMs + 10_000 },
});
const settle = async (ctl: MeshController) => {
  await new Promise((r) => setTimeout(r, 50));
  await ctl.queue.drained();
};

test("opt-in namespace + window reached: Sidecar applied by SSA (field manager meshtune), with fallback; readiness after sync", async () => {
  const t = await setup();
  try {
    assert.is(t.ctl.ready, false);
    await t.ctl.start();
    assert.is(t.ctl.ready, true);
    t.send(reviewsReport(NOW - 2 * H));
    await settle(t.ctl);
    const sc = t.fake.get("sidecars", "bookinfo", "reviews-v2")!;
    assert.ok(sc, "Sidecar created");
    assert.equal(sc.spec.egress[0].hosts, [
      "bookinfo/ratings.bookinfo.svc.cluster.local",
      "istio-system/*",
      ...MESHTUNE_IMPORTS,
    ]);
    assert.equal(sc.spec.workloadSelector.labels, { app: "reviews", version: "v2" });
    assert.equal(sc.spec.outboundTrafficPolicy.egressProxy, { host: FALLBACK.host, port: { number: 80 } });
    assert.is(sc.metadata.labels["app.kubernetes.io/managed-by"], "meshtune");
    // 5 service ports in the live catalog (informers on Services + ServiceEntries); ratings kept
    assert.is(
      sc.metadata.annotations["meshtune.io/estimated-savings"],
      "clusters 11->7 (-36.4%), endpoints 5->1 (-80%)",
    );
    const patch = t.fake.requests.find((r) => r.method === "PATCH" && r.path.endsWith("/sidecars/reviews-v2"))!;
    assert.is(patch.contentType, "application/apply-patch+yaml");
    assert.is(patch.query.get("fieldManager"), "meshtune");
    assert.is(t.fake.get("sidecars", "bookinfo", "productpage-v1"), undefined, "no traffic seen yet: observing");
    assert.is(t.fake.get("sidecars", "legacy", "old-app"), undefined, "namespace not opted in");
    assert.ok(t.fake.list("events", "bookinfo").some((e) => e.reason === "Applied"));
  } finally {
    await t.close();
  }
});

test("minimum window: too-recent traffic does not produce a Sidecar", async () => {
  const t = await setup();
  try {
    await t.ctl.start();
    t.send(reviewsReport(NOW - 5 * 60_000));
    await settle(t.ctl);
    assert.is(t.fake.get("sidecars", "bookinfo", "reviews-v2"), undefined);
    assert.match((t.ctl.decisions.get("bookinfo/reviews-v2") as { reason: string }).reason, /minimum window/);
  } finally {
    await t.close();
  }
});

test("user-owned Sidecars are never touched; opt-out deletes what meshtune generated", async () => {
  const t = await setup();
  try {
    t.fake.put("sidecars", {
      metadata: { name: "productpage-v1", namespace: "bookinfo" },
      spec: { egress: [{ hosts: ["./*"] }] },
    });
    await t.ctl.start();
    t.send(reviewsReport(NOW - 2 * H));
    t.send({ ...reviewsReport(NOW - 2 * H), proxy: { workload: "productpage-v1", namespace: "bookinfo" } });
    await settle(t.ctl);
    assert.equal(
      t.fake.get("sidecars", "bookinfo", "productpage-v1")!.spec.egress[0].hosts,
      ["./*"],
      "user Sidecar unchanged",
    );
    const skipped = t.fake.list("events", "bookinfo").filter((e) => e.reason === "Skipped");
    assert.is(skipped.length, 1, "one Warning event, not one per reconcile");
    assert.is(skipped[0].type, "Warning");
    assert.ok(!t.fake.requests.some((r) => r.method !== "GET" && r.path.endsWith("/sidecars/productpage-v1")));
    assert.ok(t.fake.get("sidecars", "bookinfo", "reviews-v2"));
    // opt out the namespace: the managed Sidecar goes away
    t.fake.put("namespaces", { metadata: { name: "bookinfo", labels: { "meshtune.io/enabled": "false" } } });
    await settle(t.ctl);
    assert.is(t.fake.get("sidecars", "bookinfo", "reviews-v2"), undefined);
    assert.ok(t.fake.get("sidecars", "bookinfo", "productpage-v1"), "user Sidecar still there");
  } finally {
    await t.close();
  }
});

test("dry-run: SSA with dryRun=All, nothing stored", async () => {
  const t = await setup({ dryRun: true });
  try {
    await t.ctl.start();
    t.send(reviewsReport(NOW - 2 * H));
    await settle(t.ctl);
    const patch = t.fake.requests.find((r) => r.method === "PATCH" && r.path.endsWith("/sidecars/reviews-v2"))!;
    assert.is(patch.query.get("dryRun"), "All");
    assert.is(t.fake.get("sidecars", "bookinfo", "reviews-v2"), undefined);
  } finally {
    await t.close();
  }
});

test("recommend-only mode applies nothing but reports the Sidecar", async () => {
  const t = await setup({ mode: "recommend" });
  try {
    await t.ctl.start();
    t.send(reviewsReport(NOW - 2 * H));
    await settle(t.ctl);
    assert.is(t.fake.list("sidecars").length, 0);
    assert.equal(
      t.ctl.recommendations().map((s) => s.metadata.name),
      ["reviews-v2"],
    );
    const st = Object.fromEntries(t.ctl.status().map((x) => [x.workload, x]));
    assert.is(st["bookinfo/reviews-v2"].action, "recommend");
    assert.match(st["bookinfo/productpage-v1"].reason!, /minimum window/);
    assert.match(st["legacy/old-app"].reason!, /not enabled/);
  } finally {
    await t.close();
  }
});

test("persistence: learned edges survive a controller restart (ConfigMap round-trip); corrupt entries are skipped", async () => {
  const t = await setup();
  try {
    await t.ctl.start();
    t.send(reviewsReport(NOW - 2 * H));
    await settle(t.ctl);
    const cm = t.fake.get("configmaps", "bookinfo", STORE_NAME)!;
    const saved = decode(cm.data["reviews-v2"]);
    assert.equal([...saved.hosts.keys()], ["bookinfo/ratings.bookinfo.svc.cluster.local"]);
    assert.is(saved.observedSinceMs, NOW - 2 * H + 10_000, "first seen = received (collector clock)");
    cm.data["bad-one"] = "{not json";
    t.fake.put("configmaps", cm);
    // a new controller (new graph: nothing in memory) restores from the ConfigMap
    const store2 = new LearnedStore(t.api, quiet);
    assert.is(await store2.load("bookinfo"), 1);
    assert.equal(encode(store2.get("bookinfo", "reviews-v2")!), cm.data["reviews-v2"]);
    // and a later reconcile 5 days on (no new traffic) still keeps the host: within retention
    await t.ctl.stop();
    t.fake.remove("sidecars", "bookinfo", "reviews-v2");
    const kc = loadKubeConfig({ yaml: t.fake.kubeconfig() });
    const ctl2 = new MeshController(
      kc,
      objectApi(kc),
      new Graph(),
      store2,
      {
        mode: "apply",
        minWindowMs: H,
        retentionMs: 7 * 24 * H,
        fallback: FALLBACK,
        scope: { ...DEFAULT_SCOPE, meshtuneHosts: [DEFAULT_COLLECTOR_HOST, FALLBACK.host] },
        defaultEnabled: false,
        dryRun: false,
        clusterDomain: "cluster.local",
        now: () => NOW + 5 * 24 * H,
      },
      quiet,
      new Registry(),
    );
    ctl2.leading = true;
    await ctl2.start();
    await settle(ctl2);
    assert.equal(t.fake.get("sidecars", "bookinfo", "reviews-v2")!.spec.egress[0].hosts, [
      "bookinfo/ratings.bookinfo.svc.cluster.local",
      "istio-system/*",
      ...MESHTUNE_IMPORTS,
    ]);
    await ctl2.stop();
  } finally {
    await t.fake.stop();
  }
});

test("leader election on a Lease: one leader; takeover only after expiry; release hands over", async () => {
  const fake = await new FakeApiServer().start();
  try {
    const api = objectApi(loadKubeConfig({ yaml: fake.kubeconfig() }));
    let now = NOW;
    const a = new LeaderElector(api, {
      namespace: "meshtune-system",
      name: "meshtune-controller",
      identity: "a",
      leaseDurationMs: 15_000,
      now: () => now,
    });
    const b = new LeaderElector(api, {
      namespace: "meshtune-system",
      name: "meshtune-controller",
      identity: "b",
      leaseDurationMs: 15_000,
      now: () => now,
    });
    assert.is(await a.tick(), true);
    assert.is(await b.tick(), false);
    now += 5_000;
    assert.is(await a.tick(), true, "renew");
    assert.is(await b.tick(), false);
    now += 16_000; // a stopped renewing
    assert.is(await b.tick(), true, "takeover after expiry");
    assert.is(await a.tick(), false, "a lost it");
    assert.is(fake.get("leases", "meshtune-system", "meshtune-controller")!.spec.leaseTransitions, 1);
    await b.release();
    assert.is(await a.tick(), true, "released lease is free at once");
    // client-go semantics: a failed renewal (409, 500) does not depose the leader before its renew deadline
    fake.failNext = { method: "PUT", pathIncludes: "/leases/", status: 409 };
    now += 1_000;
    assert.is(await a.tick(), true, "one 409 tolerated");
    fake.failNext = { method: "GET", pathIncludes: "/leases/", status: 500 };
    now += 1_000;
    assert.is(await a.tick(), true, "one 500 tolerated");
    assert.is(await a.tick(), true, "renewed again");
    // failures for longer than the renew deadline (default 2/3 of the lease): leadership ends
    const lastOk = now;
    for (now = lastOk + 2_000; now < lastOk + 11_000; now += 2_000) {
      fake.failNext = { method: "GET", pathIncludes: "/leases/", status: 500 };
      await a.tick();
    }
    fake.failNext = { method: "GET", pathIncludes: "/leases/", status: 500 };
    assert.is(await a.tick(), false, "renew deadline passed");
  } finally {
    await fake.stop();
  }
});

test("dry-run diff: hosts added and removed", () => {
  assert.equal(hostDiff(["a", "b"], ["b", "c"]), { added: ["c"], removed: ["a"] });
});

test.run();

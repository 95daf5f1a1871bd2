import { test } from "uvu";
import * as assert from "uvu/assert";
import { decide, type WorkloadView, type DecideOptions } from "../controller/reconcile/decide.js";
import { validateSidecar } from "../controller/sidecar/validate.js";
import { DEFAULT_SCOPE } from "../controller/sidecar/scope.js";

const H = 3600_000,
  D = 24 * H,
  NOW = Date.parse("2026-11-21T12:00:00Z");
const O: DecideOptions = {
  mode: "apply",
  minWindowMs: H,
  retentionMs: 7 * D,
  fallback: { host: "meshtune-fallback.meshtune-system.svc.cluster.local", port: 80 },
  scope: { ...DEFAULT_SCOPE, meshtuneHosts: [] },
};
const w = (over: Partial<WorkloadView> = {}): WorkloadView => ({
  namespace: "bookinfo",
  name: "reviews-v2",
  selector: { app: "reviews", version: "v2" },
  enabled: true,
  observedSinceMs: NOW - 2 * H,
  learned: new Map([
    ["bookinfo/ratings.bookinfo.svc.cluster.local", { firstSeenMs: NOW - 2 * H, lastSeenMs: NOW - 60_000 }],
  ]),
  ...over,
});

test("enabled + window reached → apply, with the fallback egressProxy, valid against Istio's schema", () => {
  const d = decide(w(), [], O, NOW);
  assert.is(d.action, "apply");
  if (d.action !== "apply") return;
  assert.equal(d.sidecar.spec.egress[0].hosts, ["bookinfo/ratings.bookinfo.svc.cluster.local", "istio-system/*"]);
  assert.equal(d.sidecar.spec.outboundTrafficPolicy, {
    mode: "ALLOW_ANY",
    egressProxy: { host: O.fallback!.host, port: { number: 80 } },
  });
  assert.is(d.sidecar.metadata.labels["app.kubernetes.io/managed-by"], "meshtune");
  validateSidecar(d.sidecar);
});

test("opt-in: not enabled → skip; nothing is written", () => {
  assert.equal(decide(w({ enabled: false }), [], O, NOW), { action: "skip", reason: "not enabled" });
});

test("delete on opt-out: a managed Sidecar is removed when the workload is disabled", () => {
  const d = decide(
    w({ enabled: false }),
    [{ name: "reviews-v2", managed: true, hosts: [], selector: { app: "reviews" } }],
    O,
    NOW,
  );
  assert.equal(d, { action: "delete", name: "reviews-v2", reason: "meshtune disabled for this workload" });
});

test("ownership: a user-owned Sidecar (same name, or selecting the workload) is never touched", () => {
  assert.match(
    (decide(w(), [{ name: "reviews-v2", managed: false, hosts: ["./*"], selector: null }], O, NOW) as any).reason,
    /user-owned/,
  );
  assert.match(
    (decide(w(), [{ name: "custom", managed: false, hosts: ["./*"], selector: { app: "reviews" } }], O, NOW) as any)
      .reason,
    /already selects/,
  );
  // a user Sidecar for another workload, or the namespace default, does not block us
  assert.is(
    decide(
      w(),
      [
        { name: "other", managed: false, hosts: [], selector: { app: "ratings" } },
        { name: "default", managed: false, hosts: [], selector: null },
      ],
      O,
      NOW,
    ).action,
    "apply",
  );
  assert.is(
    decide(w({ enabled: false }), [{ name: "reviews-v2", managed: false, hosts: [], selector: null }], O, NOW).action,
    "skip",
  );
});

test("minimum observation window before the first Sidecar", () => {
  assert.match((decide(w({ observedSinceMs: NOW - 10 * 60_000 }), [], O, NOW) as any).reason, /minimum window/);
  assert.match((decide(w({ observedSinceMs: null }), [], O, NOW) as any).reason, /minimum window/);
  // once a managed Sidecar exists the window no longer gates updates
  assert.is(
    decide(
      w({ observedSinceMs: NOW - 60_000 }),
      [{ name: "reviews-v2", managed: true, hosts: [], selector: null }],
      O,
      NOW,
    ).action,
    "apply",
  );
});

test("retention: never drop a dependency seen within the window; drop older ones; keep hosts of unknown age", () => {
  const learned = new Map([
    ["bookinfo/ratings.bookinfo.svc.cluster.local", { firstSeenMs: NOW - 30 * D, lastSeenMs: NOW - 6 * D }],
    ["bookinfo/details.bookinfo.svc.cluster.local", { firstSeenMs: NOW - 30 * D, lastSeenMs: NOW - 8 * D }],
  ]);
  const existing = [
    {
      name: "reviews-v2",
      managed: true,
      hosts: [
        "bookinfo/ratings.bookinfo.svc.cluster.local",
        "bookinfo/details.bookinfo.svc.cluster.local",
        "shop/cart.shop.svc.cluster.local",
      ],
      selector: null,
    },
  ];
  const d = decide(w({ learned }), existing, O, NOW);
  if (d.action !== "apply") return assert.unreachable(d.action);
  assert.equal(d.sidecar.spec.egress[0].hosts, [
    "bookinfo/ratings.bookinfo.svc.cluster.local",
    "istio-system/*",
    "shop/cart.shop.svc.cluster.local",
  ]);
  assert.equal(d.dropped, ["bookinfo/details.bookinfo.svc.cluster.local"]);
});

test("fallback present on every generated Sidecar; recommend-only mode writes nothing", () => {
  const d = decide(w(), [], { ...O, mode: "recommend" }, NOW);
  assert.is(d.action, "recommend");
  if (d.action === "recommend") assert.ok(d.sidecar.spec.outboundTrafficPolicy?.egressProxy);
});

test("gateways: skipped, and a stale managed Sidecar for one is deleted", () => {
  assert.is(decide(w({ nonSidecar: "gateway" }), [], O, NOW).action, "skip");
  assert.is(
    decide(w({ nonSidecar: "gateway" }), [{ name: "reviews-v2", managed: true, hosts: [], selector: null }], O, NOW)
      .action,
    "delete",
  );
});

test("hosts carried from a namespace default follow it: recorded, and dropped when the default narrows or goes", () => {
  const dflt = {
    namespace: "bookinfo",
    name: "default",
    hosts: ["./*", "payments/*"],
    policy: null,
    unmergeable: null,
  };
  const d = decide(w({ namespaceDefault: dflt }), [], O, NOW);
  if (d.action !== "apply") return assert.unreachable(JSON.stringify(d));
  assert.ok(d.sidecar.spec.egress[0].hosts.includes("payments/*"));
  assert.is(d.sidecar.metadata.annotations?.["meshtune.io/carried-hosts"], "./*,payments/*");
  // The default is narrowed to ./*: payments/* was carried, not learned, so it goes.
  const mine = {
    name: "reviews-v2",
    managed: true,
    hosts: d.sidecar.spec.egress[0].hosts,
    selector: { app: "reviews", version: "v2" },
    carried: ["./*", "payments/*"],
  };
  const narrowed = decide(w({ namespaceDefault: { ...dflt, hosts: ["./*"] } }), [mine], O, NOW);
  if (narrowed.action !== "apply") return assert.unreachable(JSON.stringify(narrowed));
  assert.not.ok(
    narrowed.sidecar.spec.egress[0].hosts.includes("payments/*"),
    narrowed.sidecar.spec.egress[0].hosts.join(","),
  );
  assert.ok(
    narrowed.sidecar.spec.egress[0].hosts.includes("bookinfo/ratings.bookinfo.svc.cluster.local"),
    "learned hosts stay",
  );
});

test.run();

// What Istio does with a Sidecar, asked of Istio itself (the oracle: istio.io/istio's generator and
// Envoy simulator, test/istio-oracle). These are the behaviours meshtune's Sidecars rely on; the
// cases follow Istio's own pilot/pkg/model/sidecar_test.go (TestContainsEgressDependencies) and
// the rules meshtune's scoping was written from.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { IstioOracle, type OracleCall } from "./helpers/istio-oracle.js";
import { scenario, service, pod } from "./istio/scenario.js";
import { buildSidecar, type SidecarObj } from "../controller/sidecar/generate.js";

const oracle = IstioOracle.get();
type Obj = Record<string, unknown>;
const FALLBACK = "meshtune-fallback.meshtune-system.svc.cluster.local";

const sc = (ns: string, hosts: string[], extra: Partial<SidecarObj["spec"]> = {}) => {
  const s = buildSidecar(ns, "w", { app: "w" }, hosts) as SidecarObj;
  Object.assign(s.spec, extra);
  return s as unknown as Obj;
};
const vs = (ns: string, hosts: string[], dest: string): Obj => ({
  apiVersion: "networking.istio.io/v1",
  kind: "VirtualService",
  metadata: { name: `vs-${hosts[0].split(".")[0]}`, namespace: ns },
  spec: { hosts, http: [{ route: [{ destination: { host: dest } }] }] },
});

/** The clusters and call results of proxy w (app=w) in namespace ns. */
async function ask(objs: Obj[], ns: string, calls: OracleCall[] = [], mesh?: string) {
  const a = await oracle.answer(
    scenario(
      [...objs, pod(ns, "w-1", "10.244.9.9", { app: "w" })],
      [{ name: "w-1", namespace: ns, ip: "10.244.9.9", labels: { app: "w" }, calls, names: true }],
      { mesh },
    ),
  );
  for (const v of a.validation) assert.is(v.error, undefined, `${v.kind} ${v.namespace}/${v.name}: ${v.error}`);
  const p = a.proxies[0];
  return { clusters: new Set(p.xds!.cds.names), calls: p.calls ?? [] };
}

test("Istio TestContainsEgressDependencies: which egress hosts import svc1.com (ns) and its VirtualService", async () => {
  const svc1 = [
    service("ns", "svc1", "10.96.1.1", [{ port: 80 }]),
    vs("ns", ["svc1.ns.svc.cluster.local"], "svc1.ns.svc.cluster.local"),
  ];
  const c = "outbound|80||svc1.ns.svc.cluster.local";
  for (const [hosts, want] of [
    [["*/*"], true],
    [["ns/*", "*/*"], true],
    [["ns/*"], true],
    [["other-ns/*"], false],
  ] as const)
    assert.is((await ask([...svc1, sc("default", [...hosts])], "default")).clusters.has(c), want, hosts.join(","));
  assert.ok((await ask(svc1, "default")).clusters.has(c), "no Sidecar imports everything");
});

test("a VirtualService is imported only under its own namespace, and then its destination becomes a cluster", async () => {
  const objs = [
    service("bookinfo", "reviews", "10.96.1.2", [{ port: 9080 }]),
    service("bookinfo", "reviews-v2", "10.96.1.3", [{ port: 9080 }]),
    vs("routing", ["reviews.bookinfo.svc.cluster.local"], "reviews-v2.bookinfo.svc.cluster.local"),
  ];
  const call: OracleCall = { port: 9080, host: "reviews", address: "10.96.1.2" };
  const without = await ask([...objs, sc("bookinfo", ["bookinfo/reviews.bookinfo.svc.cluster.local"])], "bookinfo", [
    call,
  ]);
  assert.is(without.calls[0].cluster, "outbound|9080||reviews.bookinfo.svc.cluster.local", "VS not imported");
  const withNs = await ask(
    [
      ...objs,
      sc("bookinfo", ["bookinfo/reviews.bookinfo.svc.cluster.local", "routing/reviews.bookinfo.svc.cluster.local"]),
    ],
    "bookinfo",
    [call],
  );
  assert.is(withNs.calls[0].cluster, "outbound|9080||reviews-v2.bookinfo.svc.cluster.local");
  assert.ok(withNs.clusters.has("outbound|9080||reviews-v2.bookinfo.svc.cluster.local"));
});

test("short names resolve in the proxy's own namespace only; unmatched Hosts follow the outbound policy", async () => {
  const objs = [
    service("bookinfo", "ratings", "10.96.1.4", [{ port: 9080 }]),
    service("meshtune-system", "meshtune-fallback", "10.96.1.5", [{ port: 80 }]),
  ];
  const at = (host: string): OracleCall => ({ port: 9080, host, address: "10.96.1.4" });
  const own = await ask(
    objs,
    "bookinfo",
    ["ratings", "ratings.bookinfo", "ratings.bookinfo.svc", "ratings.bookinfo.svc.cluster.local"].map(at),
  );
  for (const c of own.calls)
    assert.is(c.cluster, "outbound|9080||ratings.bookinfo.svc.cluster.local", JSON.stringify(c));
  const other = await ask(objs, "other", [at("ratings")]);
  assert.is(other.calls[0].cluster, "PassthroughCluster", "short name only in its own namespace");

  const ep = {
    outboundTrafficPolicy: { mode: "ALLOW_ANY" as const, egressProxy: { host: FALLBACK, port: { number: 80 } } },
  };
  const ext: OracleCall = { port: 80, host: "api.example.com", address: "203.0.113.7" };
  const imported = await ask(
    [...objs, sc("bookinfo", ["istio-system/*", `meshtune-system/${FALLBACK}`], ep)],
    "bookinfo",
    [ext],
  );
  assert.is(imported.calls[0].cluster, `outbound|80||${FALLBACK}`, "unmatched HTTP goes to the egressProxy");
  const ro = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n";
  const blocked = await ask([...objs, sc("bookinfo", ["istio-system/*"])], "bookinfo", [ext], ro);
  const b = blocked.calls[0];
  assert.ok(
    b.virtualHost === "block_all" || b.cluster === "BlackHoleCluster",
    `REGISTRY_ONLY blocks: ${JSON.stringify(b)}`,
  );
  const override = await ask(
    [...objs, sc("bookinfo", ["istio-system/*", "meshtune-system/*"], ep)],
    "bookinfo",
    [ext],
    ro,
  );
  assert.is(
    override.calls[0].cluster,
    `outbound|80||${FALLBACK}`,
    "a Sidecar's policy replaces the mesh's (why meshtune never writes one where the mesh says REGISTRY_ONLY)",
  );
});

test("wildcard hosts import by suffix; a ~namespace entry excludes a host (pinned Istio accepts and honours it)", async () => {
  const objs = [
    service("a", "x", "10.96.2.1", [{ port: 80 }]),
    service("a", "y", "10.96.2.2", [{ port: 80 }]),
    {
      apiVersion: "networking.istio.io/v1",
      kind: "ServiceEntry",
      metadata: { name: "api", namespace: "ext" },
      spec: { hosts: ["api.example.com"], ports: [{ number: 443, name: "tls", protocol: "TLS" }], resolution: "DNS" },
    },
  ];
  const p = await ask([...objs, sc("a", ["a/*", "~a/y.a.svc.cluster.local", "*/*.example.com"])], "a");
  const outbound = [...p.clusters].filter((c) => c.startsWith("outbound|")).sort();
  assert.equal(outbound, ["outbound|443||api.example.com", "outbound|80||x.a.svc.cluster.local"]);
});

test.run();

// Where meshtune's reading of Istio and Istio itself could part, judged by Istio (the oracle:
// istio.io/istio's generator and simulator). Each case is a behaviour meshtune depends on or a
// defect it had: namespace and root-namespace default Sidecars, egressProxy host naming, every
// protocol's first request to an unlearned destination, the chain the fallback's sidecar selects,
// and gateways that receive only the clusters their routes use.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { IstioOracle, type OracleCall, type OracleProxy, type ProxyAnswer } from "./helpers/istio-oracle.js";
import { scenario, service, pod } from "./istio/scenario.js";
import { ROOT } from "./helpers/cli.js";
import { decide, type WorkloadView, type DecideOptions } from "../controller/reconcile/decide.js";
import { namespaceDefault } from "../controller/sidecar/namespace-default.js";
import { DEFAULT_SCOPE, DEFAULT_COLLECTOR_HOST, DEFAULT_FALLBACK_HOST } from "../controller/sidecar/scope.js";
import { buildSidecar, type SidecarObj } from "../controller/sidecar/generate.js";
import { qualifyServiceHost } from "../controller/commands/scope-flags.js";
import { EGRESS_PROXY_PROVEN_THROUGH, unlearnedMode } from "../controller/istio/egress-proxy.js";

type Obj = Record<string, unknown>;
const FALLBACK = DEFAULT_FALLBACK_HOST;
const EGRESS = `outbound|80||${FALLBACK}`;
const CATALOG: Obj[] = [
  service("bookinfo", "ratings", "10.96.3.1", [{ port: 9080 }]),
  service("shop", "cart", "10.96.3.2", [{ port: 8080 }]),
  service("shop", "catalog", "10.96.3.3", [{ port: 9090, name: "grpc" }]),
  service("data", "db", "10.96.3.4", [{ port: 5432, name: "tcp-postgres" }]),
  service("meshtune-system", "meshtune-controller", "10.96.3.10", [{ port: 8080 }]),
  service("meshtune-system", "meshtune-fallback", "10.96.3.11", [{ port: 80 }]),
  {
    apiVersion: "networking.istio.io/v1",
    kind: "ServiceEntry",
    metadata: { name: "api", namespace: "shop" },
    spec: { hosts: ["api.example.com"], ports: [{ number: 443, name: "tls", protocol: "TLS" }], resolution: "DNS" },
  },
];
const WEB = { app: "web" };
const webPod = pod("shop", "web-1", "10.244.3.5", WEB);
const webProxy = (calls: OracleCall[], extra: Partial<OracleProxy> = {}): OracleProxy => ({
  name: "web-1",
  namespace: "shop",
  ip: "10.244.3.5",
  labels: WEB,
  calls,
  names: true,
  ...extra,
});
const RATINGS: OracleCall = { port: 9080, host: "ratings.bookinfo", address: "10.96.3.1" };
const CART: OracleCall = { port: 8080, host: "cart", address: "10.96.3.2" };
const EXTERNAL: OracleCall = { port: 80, host: "api.other.example", address: "203.0.113.9" };
const blocked = (h: { cluster?: string; virtualHost?: string }) =>
  h.virtualHost === "block_all" || h.cluster === "BlackHoleCluster";

async function web(objs: Obj[], calls: OracleCall[], mesh?: string): Promise<ProxyAnswer> {
  const a = await IstioOracle.get().answer(scenario([...CATALOG, webPod, ...objs], [webProxy(calls)], { mesh }));
  for (const v of a.validation) assert.is(v.error, undefined, `Istio rejects ${v.kind} ${v.name}: ${v.error}`);
  return a.proxies[0];
}

/** shop/web, which learned bookinfo's ratings. */
const webView = (namespaceDefault?: WorkloadView["namespaceDefault"]): WorkloadView => ({
  namespace: "shop",
  name: "web",
  selector: WEB,
  podLabels: WEB,
  enabled: true,
  observedSinceMs: 0,
  learned: new Map([["bookinfo/ratings.bookinfo.svc.cluster.local", { firstSeenMs: 0, lastSeenMs: 1000 }]]),
  namespaceDefault,
});

/** meshtune's decision for shop/web under the Sidecars already there. */
function meshtuneDecision(existing: Obj[], carry = true) {
  const w = webView(
    carry
      ? namespaceDefault(
          (ns) => existing.filter((s) => (s.metadata as { namespace: string }).namespace === ns) as Obj[],
          "shop",
          "istio-system",
          () => false,
        )
      : null,
  );
  const o: DecideOptions = {
    mode: "apply",
    minWindowMs: 0,
    retentionMs: 3_600_000,
    fallback: { host: FALLBACK, port: 80 },
    scope: { ...DEFAULT_SCOPE, meshtuneHosts: [DEFAULT_COLLECTOR_HOST, FALLBACK], fallbackHosts: [FALLBACK] },
  };
  return decide(w, [], o, 2000);
}
function meshtuneSidecar(existing: Obj[], carry = true): SidecarObj {
  const d = meshtuneDecision(existing, carry);
  assert.is(d.action, "apply", JSON.stringify(d));
  return (d as { sidecar: SidecarObj }).sidecar;
}

const defaultSidecar = (ns: string, spec: Obj): Obj => ({
  apiVersion: "networking.istio.io/v1",
  kind: "Sidecar",
  metadata: { name: "default", namespace: ns },
  spec,
});

for (const ns of ["shop", "istio-system"])
  test(`a ${ns === "shop" ? "namespace" : "root-namespace"} default Sidecar with REGISTRY_ONLY stays in force under meshtune's Sidecar`, async () => {
    const dflt = defaultSidecar(ns, {
      egress: [{ hosts: ["./*", "istio-system/*"] }],
      outboundTrafficPolicy: { mode: "REGISTRY_ONLY" },
    });
    const calls = [RATINGS, CART, EXTERNAL];
    const before = await web([dflt], calls);
    assert.ok(blocked(before.calls![2]), `the default blocks unregistered hosts: ${JSON.stringify(before.calls![2])}`);
    // What meshtune wrote before it honoured defaults: the mesh's ALLOW_ANY + egressProxy.
    const loosened = await web([dflt, meshtuneSidecar([dflt], false) as unknown as Obj], calls);
    assert.is(loosened.calls![2].cluster, EGRESS, "without the carry the namespace's REGISTRY_ONLY was lost");

    const sc = meshtuneSidecar([dflt]);
    assert.equal(sc.spec.outboundTrafficPolicy, { mode: "REGISTRY_ONLY" });
    const after = await web([dflt, sc as unknown as Obj], calls);
    assert.ok(blocked(after.calls![2]), `still blocked: ${JSON.stringify(after.calls![2])}`);
    assert.is(after.calls![0].cluster, "outbound|9080||ratings.bookinfo.svc.cluster.local", "learned call direct");
    assert.is(after.calls![1].cluster, before.calls![1].cluster, "the default's ./* hosts kept: cart unchanged");
  });

test("a default Sidecar's policy without a mode is REGISTRY_ONLY (sidecar.proto: REGISTRY_ONLY = 0)", () => {
  const d = defaultSidecar("shop", { egress: [{ hosts: ["./*"] }], outboundTrafficPolicy: {} });
  assert.equal(
    namespaceDefault(
      () => [d],
      "shop",
      "istio-system",
      () => false,
    )!.policy,
    { mode: "REGISTRY_ONLY" },
  );
  assert.equal(meshtuneSidecar([d]).spec.outboundTrafficPolicy, { mode: "REGISTRY_ONLY" });
});

test("a default Sidecar meshtune cannot carry (ingress listeners) makes it stand aside and say why", () => {
  const dflt = defaultSidecar("shop", {
    ingress: [{ port: { number: 8080, protocol: "HTTP", name: "http" }, defaultEndpoint: "127.0.0.1:8080" }],
    egress: [{ hosts: ["./*"] }],
  });
  const w = namespaceDefault(
    () => [dflt],
    "shop",
    "istio-system",
    () => false,
  );
  assert.match(w!.unmergeable!, /ingress/);
  const d = meshtuneDecision([dflt]);
  assert.is(d.action, "skip");
  assert.match((d as { reason: string }).reason, /shop\/default .*ingress.*stands aside/);
});

test("egressProxy names a cluster literally: a short host routes to a cluster no proxy has; meshtune completes it", async () => {
  const withHost = (host: string) =>
    buildSidecar("shop", "web", WEB, ["istio-system/*", `meshtune-system/${FALLBACK}`], {
      host,
      port: 80,
    }) as unknown as Obj;
  const short = await web([withHost("meshtune-fallback.meshtune-system")], [EXTERNAL]);
  const c = short.calls![0].cluster!;
  assert.is(c, "outbound|80||meshtune-fallback.meshtune-system");
  assert.not.ok(short.xds!.cds.names!.includes(c), "Envoy would answer 503 NC: the cluster does not exist");
  const fixed = qualifyServiceHost("--fallback-host", "meshtune-fallback.meshtune-system", "cluster.local");
  assert.is(fixed, FALLBACK);
  const full = await web([withHost(fixed)], [EXTERNAL]);
  assert.is(full.calls![0].cluster, EGRESS);
  assert.ok(full.xds!.cds.names!.includes(EGRESS));
  assert.throws(() => qualifyServiceHost("--fallback-host", "meshtune-fallback", "cluster.local"), /fully qualified/);
});

test("every protocol's first request to an unlearned destination leaves through the egressProxy (ALLOW_ANY)", async () => {
  const sc = meshtuneSidecar([]) as unknown as Obj;
  const calls: [string, OracleCall][] = [
    ["HTTP/1.1", EXTERNAL],
    ["HTTP/2 (h2c)", { ...EXTERNAL, protocol: "http2" }],
    [
      "gRPC",
      {
        port: 9090,
        host: "catalog.shop",
        address: "10.96.3.3",
        protocol: "http2",
        headers: { "content-type": "application/grpc" },
      },
    ],
    ["TLS by SNI", { port: 443, address: "198.51.100.4", protocol: "tcp", tls: "tls", sni: "api.example.com" }],
    ["raw TCP", { port: 5432, address: "10.96.3.4", protocol: "tcp" }],
  ];
  const p = await web(
    [sc],
    calls.map(([, c]) => c),
  );
  p.calls!.forEach((h, i) => assert.is(h.cluster, EGRESS, `${calls[i][0]}: ${JSON.stringify(h)}`));
  // Which chain: HTTP on a port the proxy has an HTTP listener for goes through the allow_any
  // virtual host (HTTP to the fallback); everything else through the catch-all as TCP.
  assert.is(p.calls![0].virtualHost, "allow_any");
  assert.is(p.calls![1].virtualHost, "allow_any");
  for (const i of [2, 3, 4]) assert.is(p.calls![i].filterChain, "virtualOutbound-catchall-tcp", calls[i][0]);
});

test("the way out if Istio stops honouring egressProxy: passthrough, chosen automatically past the proven line", async () => {
  // The pinned Istio is the line EGRESS_PROXY_PROVEN_THROUGH names: raising the pin re-runs the
  // proof above, and this check asks for the constant to follow.
  const pinned = readFileSync(`${ROOT}/test/istio-oracle/oracle_test.go`, "utf8").match(
    /IstioVersion = "(\d+)\.(\d+)/,
  )!;
  assert.equal(
    [Number(pinned[1]), Number(pinned[2])],
    EGRESS_PROXY_PROVEN_THROUGH,
    "proof and constant name the same line",
  );
  assert.is(unlearnedMode("auto", [1, 31]).mode, "egress-proxy");
  assert.is(unlearnedMode("auto", [1, 32]).mode, "passthrough");
  // Without egressProxy (as istiod would behave if it dropped the field), Istio itself sends every
  // protocol's first request through PassthroughCluster: no hop, no extra cluster; a STRICT
  // destination then refuses the plaintext first request until meshtune learns the host.
  const d = decide(
    webView(),
    [],
    {
      mode: "apply",
      minWindowMs: 0,
      retentionMs: 3_600_000,
      fallback: null,
      scope: { ...DEFAULT_SCOPE, meshtuneHosts: [DEFAULT_COLLECTOR_HOST] },
    },
    2000,
  );
  assert.is(d.action, "apply");
  const sc = (d as { sidecar: SidecarObj }).sidecar;
  assert.is(sc.spec.outboundTrafficPolicy, undefined, "passthrough: the mesh's ALLOW_ANY, no egressProxy");
  const p = await web(
    [sc as unknown as Obj],
    [
      EXTERNAL,
      { port: 9090, host: "catalog.shop", address: "10.96.3.3", protocol: "http2" },
      { port: 5432, address: "10.96.3.4", protocol: "tcp" },
    ],
  );
  for (const h of p.calls!) assert.is(h.cluster, "PassthroughCluster", JSON.stringify(h));
  assert.is(p.calls![1].filterChain, "virtualOutbound-catchall-tcp");
});

test("the fallback's sidecar: both chains a first request can arrive on accept it, and TPROXY keeps the caller's address", async () => {
  // The shipped objects: the fallback's Service (port 80 → 8080, protocol auto), its STRICT
  // PeerAuthentication and AuthorizationPolicy, and its pod's labels and TPROXY annotation.
  const shipped = parseAllDocuments(readFileSync(`${ROOT}/manifests/fallback.yaml`, "utf8")).map(
    (d) => d.toJSON() as Obj,
  );
  const pick = (kind: string) => shipped.filter((o) => o.kind === kind);
  const deploy = pick("Deployment")[0] as {
    spec: { template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> } } };
  };
  const labels = deploy.spec.template.metadata.labels;
  assert.is(deploy.spec.template.metadata.annotations["sidecar.istio.io/interceptionMode"], "TPROXY");
  const IP = "10.244.3.20";
  const inbound = (protocol: "http" | "http2" | "tcp"): OracleCall => ({
    port: 8080,
    mode: "inbound",
    tls: "mtls",
    protocol,
    address: IP,
  });
  const fb: OracleProxy = {
    name: "meshtune-fallback-1",
    namespace: "meshtune-system",
    ip: IP,
    labels,
    interception: "TPROXY",
    names: true,
    // HTTP leaving the caller through allow_any: its cluster offers istio-http/1.1 or istio-h2.
    // TCP, TLS and HTTP on ports without a listener leave through the catch-all: ALPN "istio".
    calls: [inbound("http"), inbound("http2"), inbound("tcp")],
  };
  const eps = {
    apiVersion: "v1",
    kind: "Endpoints",
    metadata: { name: "meshtune-fallback", namespace: "meshtune-system" },
    subsets: [{ addresses: [{ ip: IP }], ports: [{ name: "fallback", port: 8080 }] }],
  };
  const objs = [
    ...pick("Service"),
    ...pick("PeerAuthentication"),
    ...pick("AuthorizationPolicy"),
    eps,
    pod("meshtune-system", "meshtune-fallback-1", IP, labels),
  ];
  const a = await IstioOracle.get().answer(scenario(objs, [fb]));
  const [h1, h2, tcp] = a.proxies[0].calls!;
  for (const h of [h1, h2, tcp]) assert.is(h.error, undefined, JSON.stringify(h));
  for (const h of [h1, h2, tcp]) assert.is(h.cluster, "inbound|8080||", JSON.stringify(h));
  // Auto protocol (port name "fallback"): the chain is picked by the caller sidecar's ALPN
  // (filterchain_options.go): HTTP through the connection manager, TCP straight to tcp_proxy.
  assert.ok(h1.virtualHost && h2.virtualHost, `HTTP chain: ${JSON.stringify(h1)}`);
  assert.is(tcp.virtualHost, undefined, `TCP chain: ${JSON.stringify(tcp)}`);
  // The identity logic (controller/fallback/caller.ts) uses the peer address on both chains;
  // in TPROXY mode Istio keeps it with original_src on the inbound listener.
  const vi = a.proxies[0].chains!.find((c) => c.listener === "virtualInbound")!;
  assert.ok(vi.listenerFilters.includes("envoy.filters.listener.original_src"), vi.listenerFilters.join(","));
});

const GATEWAY_OBJS: Obj[] = [
  service("istio-system", "istio-ingressgateway", "10.96.3.30", [{ port: 80 }]),
  pod("istio-system", "istio-ingressgateway-1", "10.244.3.30", { istio: "ingressgateway" }),
  {
    apiVersion: "networking.istio.io/v1",
    kind: "Gateway",
    metadata: { name: "public", namespace: "shop" },
    spec: {
      selector: { istio: "ingressgateway" },
      servers: [{ port: { number: 80, name: "http", protocol: "HTTP" }, hosts: ["*"] }],
    },
  },
  {
    apiVersion: "networking.istio.io/v1",
    kind: "VirtualService",
    metadata: { name: "cart", namespace: "shop" },
    spec: {
      hosts: ["*"],
      gateways: ["public"],
      http: [{ route: [{ destination: { host: "cart.shop.svc.cluster.local" } }] }],
    },
  },
];
const gatewayClusters = async (env: Record<string, string>, extra: Obj[]) => {
  const a = await IstioOracle.get(env).answer(
    scenario(
      [...CATALOG, ...GATEWAY_OBJS, ...extra],
      [
        {
          name: "istio-ingressgateway-1",
          namespace: "istio-system",
          ip: "10.244.3.30",
          labels: { istio: "ingressgateway" },
          type: "router",
          names: true,
        },
      ],
    ),
  );
  for (const v of a.validation) assert.is(v.error, undefined, `Istio rejects ${v.kind} ${v.name}: ${v.error}`);
  return new Set(a.proxies[0].xds!.cds.names);
};

test("gateways under PILOT_FILTER_GATEWAY_CLUSTER_CONFIG keep the collector cluster through meshtune's EnvoyFilter", async () => {
  const COLLECTOR = `outbound|8080||${DEFAULT_COLLECTOR_HOST}`;
  const shipped = parseAllDocuments(readFileSync(`${ROOT}/manifests/gateway-collector.yaml`, "utf8")).map(
    (d) => d.toJSON() as Obj,
  );
  assert.ok((await gatewayClusters({}, [])).has(COLLECTOR), "unfiltered gateways get every cluster");
  const FILTER = { PILOT_FILTER_GATEWAY_CLUSTER_CONFIG: "true" };
  const filtered = await gatewayClusters(FILTER, []);
  assert.ok(filtered.has("outbound|8080||cart.shop.svc.cluster.local"), "routed service kept");
  assert.not.ok(filtered.has(COLLECTOR), "filtering drops the collector: reports would fail");
  assert.ok((await gatewayClusters(FILTER, shipped)).has(COLLECTOR), "the shipped EnvoyFilter keeps it");
});

test.run();

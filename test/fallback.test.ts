// Acceptance for destinations not learned yet, with real processes on loopback: the real
// `meshtune fallback` (its "sidecar" in front is test/istio/inbound-proxy.ts; out the back it
// connects through --resolve, standing in for its own sidecar's routing), a collector + controller
// against the fake API server, real upstream HTTP and TLS servers. Istio itself (the oracle,
// test/istio-oracle) decides where the caller's request goes before and after each apply.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { createServer as createHttpServer, request as httpRequest, type Server } from "node:http";
import { createServer as createTlsServer, connect as tlsConnect } from "node:tls";
import { connect as netConnect, createServer as createNetServer, type AddressInfo } from "node:net";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { FakeApiServer } from "./k8s/fake-apiserver.js";
import { loadKubeConfig, objectApi } from "../controller/k8s/kube.js";
import { KubeAccessReviewer } from "../controller/k8s/access-review.js";
import { LearnedStore } from "../controller/k8s/learned-store.js";
import { MeshController } from "../controller/reconcile/controller.js";
import { Graph } from "../controller/model/graph.js";
import { Collector } from "../controller/collector/server.js";
import { DEFAULT_SCOPE, DEFAULT_COLLECTOR_HOST, DEFAULT_FALLBACK_HOST } from "../controller/sidecar/scope.js";
import type { SidecarObj } from "../controller/sidecar/generate.js";
import { InboundProxy } from "./istio/inbound-proxy.js";
import { IstioOracle, type Hit } from "./helpers/istio-oracle.js";
import { scenario, service, pod } from "./istio/scenario.js";
import { deploymentPod } from "./fixtures/pods.js";
import { CLI } from "./helpers/cli.js";
import { filterHost, request, bodyOf } from "./helpers/filter.js";

const fq = (n: string, ns = "bookinfo") => `${n}.${ns}.svc.cluster.local`;
const IPS: Record<string, string> = { ratings: "10.96.0.20", reviews: "10.96.0.21", productpage: "10.96.0.22" };
// Istio itself (the oracle) says where productpage's sidecar sends a request under a Sidecar.
const ORACLE_CATALOG = [
  ...["productpage", "reviews", "ratings"].map((n) => service("bookinfo", n, IPS[n], [{ port: 9080 }])),
  service("meshtune-system", "meshtune-controller", "10.96.0.30", [{ port: 8080 }]),
  service("meshtune-system", "meshtune-fallback", "10.96.0.31", [{ port: 80 }]),
  {
    apiVersion: "networking.istio.io/v1",
    kind: "ServiceEntry",
    metadata: { name: "api", namespace: "payments" },
    spec: { hosts: ["api.example.com"], ports: [{ number: 443, name: "tls", protocol: "TLS" }], resolution: "DNS" },
  },
];
const REGISTRY_ONLY = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n";
async function routeOf(sidecar: SidecarObj, host: string, port: number, mesh?: string): Promise<Hit> {
  const labels = { app: "productpage", version: "v1" };
  const ans = await IstioOracle.get().answer(
    scenario(
      [
        ...ORACLE_CATALOG,
        sidecar as unknown as Record<string, unknown>,
        pod("bookinfo", "productpage-v1-1", "10.244.0.9", labels),
      ],
      [
        {
          name: "productpage-v1-1",
          namespace: "bookinfo",
          ip: "10.244.0.9",
          labels,
          calls: [{ port, host, address: IPS[host.split(".")[0]] }],
        },
      ],
      { mesh },
    ),
  );
  for (const v of ans.validation) assert.is(v.error, undefined, `Istio rejects ${v.kind} ${v.name}: ${v.error}`);
  return ans.proxies[0].calls![0];
}
const blocked = (h: Hit) => h.virtualHost === "block_all" || h.cluster === "BlackHoleCluster";

async function until<T>(what: string, f: () => T | undefined | null | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const listen = (s: Server | ReturnType<typeof createNetServer>) =>
  new Promise<number>((r) => s.listen(0, "127.0.0.1", () => r((s.address() as AddressInfo).port)));
const hostsOf = (sc: SidecarObj | undefined) => sc?.spec.egress[0].hosts ?? [];

async function cluster(outbound: "ALLOW_ANY" | "REGISTRY_ONLY") {
  const fake = await new FakeApiServer().start();
  fake.put("namespaces", { metadata: { name: "bookinfo", labels: { "meshtune.io/enabled": "true" } } });
  const pp = deploymentPod("bookinfo", "productpage-v1", "6987489c74", "6fgz8", { app: "productpage", version: "v1" });
  (pp as any).status = { podIP: "127.0.0.3", podIPs: [{ ip: "127.0.0.3" }] };
  (pp as any).spec.nodeName = "node-1";
  fake.put("pods", pp);
  for (const [n, ip] of Object.entries(IPS))
    fake.put("services", {
      metadata: { name: n, namespace: "bookinfo" },
      spec: { clusterIP: ip, clusterIPs: [ip], selector: { app: n }, ports: [{ name: "http", port: 9080 }] },
    });
  fake.put("services", {
    metadata: { name: "meshtune-fallback", namespace: "meshtune-system" },
    spec: { clusterIP: "10.96.9.9", ports: [{ name: "fallback", port: 80 }] },
  });
  fake.put("serviceentries", {
    apiVersion: "networking.istio.io/v1beta1",
    kind: "ServiceEntry",
    metadata: { name: "example-api", namespace: "payments" },
    spec: {
      hosts: ["api.example.com"],
      ports: [{ number: 443, name: "tls", protocol: "TLS" }],
      location: "MESH_EXTERNAL",
      resolution: "DNS",
    },
  });
  fake.put("configmaps", {
    metadata: { name: "istio", namespace: "istio-system" },
    data: { mesh: `outboundTrafficPolicy:\n  mode: ${outbound}\n` },
  });
  fake.tokens.set("fallback-token", {
    username: "system:serviceaccount:meshtune-system:meshtune-fallback",
    groups: ["system:serviceaccounts"],
  });
  fake.tokens.set("agent-token", {
    username: "system:serviceaccount:meshtune-system:meshtune-node",
    groups: ["system:serviceaccounts"],
    extra: { "authentication.kubernetes.io/node-name": ["node-1"] },
  });
  fake.tokens.set("productpage-token", {
    username: "system:serviceaccount:bookinfo:bookinfo-productpage",
    groups: ["system:serviceaccounts"],
  });
  const kc = loadKubeConfig({ yaml: fake.kubeconfig() });
  const api = objectApi(kc);
  const graph = new Graph();
  const ctl = new MeshController(
    kc,
    api,
    graph,
    new LearnedStore(api),
    {
      mode: "apply",
      minWindowMs: 0,
      retentionMs: 3_600_000,
      fallback: { host: DEFAULT_FALLBACK_HOST, port: 80 },
      scope: { ...DEFAULT_SCOPE, meshtuneHosts: [DEFAULT_COLLECTOR_HOST, DEFAULT_FALLBACK_HOST] },
      defaultEnabled: false,
      dryRun: false,
      clusterDomain: "cluster.local",
      flushDelayMs: 10,
    },
    () => {},
    new Registry(),
  );
  ctl.leading = true;
  await ctl.start();
  const collector = new Collector(graph, new Registry(), {
    auth: {
      self: { namespace: "meshtune-system", serviceAccount: "meshtune-controller" },
      reviewer: new KubeAccessReviewer(kc),
    },
    bind: (c, ns, w) => ctl.bindCaller(c, ns, w),
    index: () => ctl.hostIndex(),
    fallbackIdentity: { namespace: "meshtune-system", serviceAccount: "meshtune-fallback" },
    mergeFallback: (r) => ctl.mergeFallback(r),
    agentIdentity: { namespace: "meshtune-system", serviceAccount: "meshtune-node" },
    mergeAgent: (r) => ctl.mergeAgent(r),
  });
  collector.onMerged = (ns, w) => ctl.touched(ns, w);
  const cs = await collector.listen(0, "127.0.0.1");
  const collectorUrl = `http://127.0.0.1:${(cs.address() as AddressInfo).port}/v1/reports`;
  const post = (body: string, token = "productpage-token") =>
    fetch(collectorUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body,
    });
  const sidecar = () => fake.get("sidecars", "bookinfo", "productpage-v1") as unknown as SidecarObj | undefined;
  /** productpage's first Sidecar, from its filter's report (reviews only); the filter host for later reports. */
  const firstSidecar = async () => {
    const h = filterHost();
    h.http(request("outbound|9080||reviews.bookinfo.svc.cluster.local", { host: "reviews:9080" }));
    h.tick();
    assert.is((await post(new TextDecoder().decode(h.callouts[0].body))).status, 202);
    h.respond(h.callouts[0], { status: 202 });
    return { h, first: await until("productpage's first Sidecar", () => sidecar()) };
  };
  const stop = async () => {
    await ctl.stop();
    cs.closeAllConnections();
    cs.close();
    await fake.stop();
  };
  return { fake, ctl, collectorUrl, post, sidecar, firstSidecar, stop };
}

test("ALLOW_ANY: an unlearned HTTP request and a TLS connection are served through the real fallback, and the caller's Sidecar gains each host in < 5 s", async () => {
  const c = await cluster("ALLOW_ANY");
  const dir = mkdtempSync(join(tmpdir(), "meshtune-fallback-"));
  const closers: (() => void)[] = [];
  let fb: ChildProcess | null = null;
  try {
    const { first } = await c.firstSidecar();
    assert.equal(first.spec.outboundTrafficPolicy, {
      mode: "ALLOW_ANY",
      egressProxy: { host: DEFAULT_FALLBACK_HOST, port: { number: 80 } },
    });
    const viaFallback = await routeOf(first, "ratings.bookinfo", 9080);
    assert.is(
      viaFallback.cluster,
      `outbound|80||${DEFAULT_FALLBACK_HOST}`,
      "the scoped proxy sends ratings to the fallback",
    );

    // Real upstreams: ratings (HTTP) and api.example.com (TLS, self-signed for the test).
    const ratings = createHttpServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json", "x-seen-host": req.headers.host ?? "" });
      req.resume();
      res.end(JSON.stringify({ ratings: { reviewer1: 5 } }));
    });
    const ratingsPort = await listen(ratings);
    closers.push(() => {
      ratings.closeAllConnections();
      ratings.close();
    });
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=api.example.com",
        "-addext",
        "subjectAltName=DNS:api.example.com",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    const cert = readFileSync(join(dir, "cert.pem")),
      key = readFileSync(join(dir, "key.pem"));
    const api = createTlsServer({ cert, key }, (s) => {
      s.end("hello over TLS\n");
    });
    const apiPort = await listen(api);
    closers.push(() => api.close());

    // The real fallback process.
    const probe = createNetServer();
    const fbPort = await listen(probe); // a free port number for the fallback
    await new Promise((r) => probe.close(r));
    writeFileSync(join(dir, "token"), "fallback-token");
    writeFileSync(join(dir, "kubeconfig"), c.fake.kubeconfig());
    fb = spawn(
      "node",
      [
        CLI,
        "fallback",
        "--port",
        String(fbPort),
        "--metrics-port",
        "0",
        "--kubeconfig",
        join(dir, "kubeconfig"),
        "--collector",
        c.collectorUrl,
        "--token-file",
        join(dir, "token"),
        "--self",
        "meshtune-system/meshtune-fallback",
        "--report-delay",
        "50ms",
        "--resolve",
        `${fq("ratings")}:9080=127.0.0.1:${ratingsPort}`,
        "--resolve",
        `api.example.com:443=127.0.0.1:${apiPort}`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let logs = "";
    fb.stdout!.on("data", (d) => (logs += d));
    fb.stderr!.on("data", (d) => (logs += d));
    await until(
      "fallback listening and its catalog synced",
      () => /meshtune fallback listening/.test(logs) && /catalog synced; ready/.test(logs),
      10_000,
    ).catch((e) => {
      throw new Error(`${e.message}\n${logs}`);
    });
    // Its inbound sidecar: mTLS from productpage's identity, connecting from productpage's address (TPROXY).
    const inbound = await new InboundProxy({
      appPort: fbPort,
      self: "meshtune-system/meshtune-fallback",
      peer: "bookinfo/bookinfo-productpage",
      interception: "TPROXY", // as manifests/fallback.yaml pins it: the caller is known by its pod address
      peerAddress: "127.0.0.3",
      forwardedClientCert: "SANITIZE_SET",
    }).start();
    closers.push(() => void inbound.stop());

    // HTTP: Host as the app wrote it; a forged caller header must not matter.
    const t0 = Date.now();
    const r = await new Promise<{ status: number; body: string; seen: string }>((resolve, reject) => {
      const rq = httpRequest(
        `${inbound.url}/ratings/0`,
        {
          headers: {
            host: "ratings.bookinfo:9080",
            "x-forwarded-client-cert":
              "By=spiffe://cluster.local/ns/meshtune-system/sa/meshtune-fallback;URI=spiffe://cluster.local/ns/evil/sa/evil",
          },
        },
        (res) => {
          let b = "";
          res.on("data", (d) => (b += d));
          res.on("end", () => resolve({ status: res.statusCode!, body: b, seen: String(res.headers["x-seen-host"]) }));
        },
      );
      rq.on("error", reject);
      rq.end();
    });
    assert.equal(
      [r.status, JSON.parse(r.body)],
      [200, { ratings: { reviewer1: 5 } }],
      "answered correctly through the fallback",
    );
    assert.is(
      r.seen,
      `${fq("ratings")}:9080`,
      "the Host the fallback's sidecar routes by is the caller-namespace FQDN",
    );
    const grown = await until(
      "ratings in productpage's Sidecar",
      () => hostsOf(c.sidecar()).includes(`bookinfo/${fq("ratings")}`) && c.sidecar(),
    );
    const learnMs = Date.now() - t0;
    assert.ok(learnMs < 5000, `learned in ${learnMs} ms`);
    assert.not.ok(
      hostsOf(grown).some((x) => x.startsWith("evil/")),
      "forged XFCC element ignored",
    );
    assert.is(
      (await routeOf(grown, "ratings.bookinfo", 9080)).cluster,
      `outbound|9080||${fq("ratings")}`,
      "after the apply: direct",
    );

    // TLS by SNI, passthrough: the caller's sidecar connects from the pod's address, as the
    // fallback's TPROXY inbound listener keeps it (istio listener_inbound.go populateListenerFilters: original_src).
    const t1 = Date.now();
    const text = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect(
        {
          socket: netConnect({ host: "127.0.0.1", port: fbPort, localAddress: "127.0.0.3" }),
          servername: "api.example.com",
          ca: cert,
        },
        () => {
          assert.is(
            s.getPeerCertificate().subject.CN,
            "api.example.com",
            "end-to-end TLS: the fallback never terminates it",
          );
        },
      );
      let b = "";
      s.on("data", (d) => (b += d));
      s.on("end", () => resolve(b));
      s.on("error", reject);
    });
    assert.is(text, "hello over TLS\n");
    await until("api.example.com in productpage's Sidecar", () =>
      hostsOf(c.sidecar()).includes("payments/api.example.com"),
    );
    assert.ok(Date.now() - t1 < 5000);

    // Raw TCP cannot be routed (its destination address is gone): refused at once, counted.
    const closed = await new Promise<boolean>((resolve) => {
      const s = netConnect(fbPort, "127.0.0.1", () => s.write(Buffer.from([0x00, 0x01, 0x02, 0x03])));
      s.on("close", () => resolve(true));
      s.on("error", () => {});
    });
    assert.ok(closed);
    const metricsPort = Number(/"metricsPort":(\d+)/.exec(logs)?.[1] ?? 0);
    if (metricsPort) {
      const m = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(m, /meshtune_fallback_refused_total\{reason="unroutable-tcp"\} 1/);
      assert.match(m, /meshtune_fallback_requests_total\{proto="HTTP",outcome="forwarded"\} 1/);
    }

    // Only the fallback's identity may send fallback reports.
    const forged = await c.post(
      JSON.stringify({
        v: 2,
        kind: "fallback",
        edges: [
          {
            caller: { namespace: "bookinfo", serviceAccount: "bookinfo-productpage" },
            host: fq("productpage"),
            port: 9080,
            proto: "HTTP",
            count: 1,
          },
        ],
      }),
    );
    assert.is(forged.status, 403);
    assert.match(await forged.text(), /^identity-mismatch: only the fallback/);
  } finally {
    fb?.kill("SIGTERM");
    for (const f of closers) f();
    await c.stop();
  }
});

// The node agent's connect-time edges (what `meshtune agent` sends; test/bpf-node.test.ts shows
// it sending them): a raw-TCP first connection no filter saw, to a ClusterIP, is learned.
test("agent L4 edges: a raw-TCP connection to a ClusterIP is imported in < 5 s; only the agent, only for pods of its node", async () => {
  const c = await cluster("ALLOW_ANY");
  try {
    const { first } = await c.firstSidecar();
    assert.not.ok(hostsOf(first).includes(`bookinfo/${fq("ratings")}`));
    const body = (node: string, dst: string) =>
      JSON.stringify({
        v: 2,
        kind: "agent",
        node,
        pods: [{ namespace: "bookinfo", name: pod, edges: [{ dst, count: 3 }] }],
      });
    const pod = c.fake.list("pods", "bookinfo")[0].metadata.name;
    const forged = await c.post(body("node-1", "10.96.0.20:9080"));
    assert.is(forged.status, 403);
    assert.match(await forged.text(), /^identity-mismatch: only the node agent/);
    const wrongNode = await c.post(body("node-2", "10.96.0.20:9080"), "agent-token");
    assert.is(wrongNode.status, 403);
    assert.match(await wrongNode.text(), /token is bound to node node-1, not node-2/);
    const bad = await c.post(body("node-1", "not-an-address"), "agent-token");
    assert.is(bad.status, 400);
    const t0 = Date.now();
    const ok = await c.post(body("node-1", "10.96.0.20:9080"), "agent-token");
    assert.is(ok.status, 202, await ok.text());
    const learned = await until(
      "ratings imported from the agent's edge",
      () => hostsOf(c.sidecar()).includes(`bookinfo/${fq("ratings")}`) && c.sidecar(),
    );
    assert.ok(Date.now() - t0 < 5000);
    assert.ok(hostsOf(learned).includes(`bookinfo/${fq("reviews")}`), "nothing learned before is lost");
  } finally {
    await c.stop();
  }
});

test("REGISTRY_ONLY: the mesh policy is kept; a blocked in-mesh host and a Passthrough TCP ClusterIP are learned, an external one is only suggested", async () => {
  const c = await cluster("REGISTRY_ONLY");
  try {
    const { h, first } = await c.firstSidecar();
    assert.is(first.spec.outboundTrafficPolicy, undefined, "REGISTRY_ONLY is inherited, never overridden");
    const before = await routeOf(first, "ratings.bookinfo", 9080, REGISTRY_ONLY);
    assert.ok(blocked(before), `REGISTRY_ONLY blocks the unlearned host: ${JSON.stringify(before)}`);
    // The filter sees the block_all refusal; a Passthrough TCP record (an Istio that filters the catch-all chain, or a gateway) names a ClusterIP.
    h.http(
      request("", { code: 502, host: "ratings.bookinfo:9080", destination: "10.96.0.20:9080", route: "block_all" }),
    );
    h.http(request("", { code: 502, host: "unknown.example.org", destination: "198.51.100.7:80", route: "block_all" }));
    h.tick();
    const body = bodyOf(h);
    assert.is(body.unknown.length, 2);
    assert.is((await c.post(JSON.stringify(body))).status, 202);
    h.respond(h.callouts.at(-1)!, { status: 202 });
    const grown = await until(
      "ratings learned from block_all",
      () => hostsOf(c.sidecar()).includes(`bookinfo/${fq("ratings")}`) && c.sidecar(),
    );
    assert.is(grown.spec.outboundTrafficPolicy, undefined);
    assert.not.ok(
      hostsOf(grown).some((x) => x.includes("example.org")),
      "an unregistered host is never imported",
    );
    assert.is(
      (await routeOf(grown, "ratings.bookinfo", 9080, REGISTRY_ONLY)).cluster,
      `outbound|9080||${fq("ratings")}`,
    );

    // TCP through Passthrough, seen by the network filter: the ClusterIP names productpage's service.
    h.tcp({
      properties: { "xds.cluster_name": "PassthroughCluster", "upstream.address": `${IPS.productpage}:9080` },
      sent: [10],
      received: [10],
    });
    h.tick();
    assert.is((await c.post(new TextDecoder().decode(h.callouts.at(-1)!.body))).status, 202);
    await until("productpage's own service learned from a ClusterIP", () =>
      hostsOf(c.sidecar()).includes(`bookinfo/${fq("productpage")}`),
    );
  } finally {
    await c.stop();
  }
});

test("--catalog (no API server, as the bench runs it): Pods in the file name callers; the fallback serves", async () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-fallback-cat-"));
  const up = createHttpServer((req, res) => {
    req.resume();
    res.end("ok");
  });
  const upPort = await listen(up);
  writeFileSync(
    join(dir, "catalog.json"),
    JSON.stringify({
      items: [
        {
          kind: "Service",
          metadata: { name: "ratings", namespace: "bookinfo" },
          spec: { clusterIP: "10.96.0.20", selector: { app: "ratings" }, ports: [{ name: "http", port: 9080 }] },
        },
        {
          kind: "Pod",
          metadata: { name: "productpage-v1-x", namespace: "bookinfo" },
          spec: { serviceAccountName: "bookinfo-productpage" },
          status: { podIP: "127.0.0.3" },
        },
      ],
    }),
  );
  const probe = createNetServer();
  const port = await listen(probe);
  await new Promise((r) => probe.close(r));
  const fb = spawn(
    "node",
    [CLI, "fallback", "--port", String(port), "--metrics-port", "0", "--catalog", join(dir, "catalog.json")].concat([
      "--collector",
      "http://127.0.0.1:9/v1/reports",
      "--resolve",
      `${fq("ratings")}:9080=127.0.0.1:${upPort}`,
    ]),
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let logs = "";
  fb.stderr!.on("data", (d) => (logs += d));
  try {
    await until("listening", () => /meshtune fallback listening/.test(logs), 10_000).catch((e) => {
      throw new Error(`${e.message}\n${logs}`);
    });
    const status = await new Promise<number>((resolve, reject) => {
      const rq = httpRequest(
        { host: "127.0.0.1", port, path: "/", localAddress: "127.0.0.3", headers: { host: "ratings.bookinfo:9080" } },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      rq.on("error", reject);
      rq.end();
    });
    assert.is(status, 200, logs);
  } finally {
    fb.kill("SIGKILL");
    up.closeAllConnections();
    up.close();
  }
});

test.run();

// Issue 23, "the fallback must not be a hole": the real `meshtune fallback` process, watching the
// fake API server (Services, ServiceEntries, Pods, AuthorizationPolicies), attacked the ways the
// campaign did on f898273. Callers are loopback aliases standing for pod addresses, which is
// what the fallback's TPROXY sidecar shows it (istio listener_inbound.go original_src); its
// upstreams are real local servers reached through --resolve (standing in for its own sidecar's
// routing); its collector is a capture server. Item numbers refer to issue 23.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { connect as h2connect, createServer as createH2Server } from "node:http2";
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { FakeApiServer } from "../k8s/fake-apiserver.js";
import { deploymentPod } from "../fixtures/pods.js";
import { CLI } from "../helpers/cli.js";
import { freePort } from "../helpers/net.js";
import { LearnReporter } from "../../controller/fallback/reporter.js";
import { route } from "../../controller/fallback/route.js";
import { addressLike } from "../../controller/fallback/address.js";
import { authorize } from "../../controller/fallback/authz.js";
import { HostIndex } from "../../controller/istio/hosts.js";

const POD = { evil: "127.0.0.21", frontend: "127.0.0.22", victim: "127.0.0.23" };
const fq = (n: string, ns: string) => `${n}.${ns}.svc.cluster.local`;
const listen = (s: Server | ReturnType<typeof createNetServer> | ReturnType<typeof createH2Server>) =>
  new Promise<number>((r) => s.listen(0, "127.0.0.1", () => r((s.address() as AddressInfo).port)));
async function until<T>(what: string, f: () => T | undefined | null | false, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// Upstreams: an echo of what arrived (method, path, headers), an h2c/gRPC server, and a "sensitive"
// server on loopback standing for Envoy admin / pilot-agent (must never be reached).
const seen: { path: string; headers: IncomingMessage["headers"] }[] = [];
const echo = createHttpServer((req, res) => {
  seen.push({ path: req.url ?? "", headers: req.headers });
  req.resume();
  const answer = () => {
    res.writeHead(200, { "content-type": "application/json", "x-envoy-upstream-service-time": "1" });
    res.end(JSON.stringify({ path: req.url }));
  };
  // /slow answers after the fallback's headers deadline (1 s here) has passed.
  if (req.url?.startsWith("/slow")) setTimeout(answer, 1600);
  else answer();
});
const echoPort = await listen(echo);
let adminHits = 0;
const admin = createHttpServer((_req, res) => {
  adminHits++;
  res.end("admin\n");
});
const adminPort = await listen(admin);
const h2 = createH2Server();
h2.on("stream", (stream, headers) => {
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": "ok" }));
  stream.end(Buffer.from(`grpc ${headers[":path"]} via ${headers[":authority"]}`));
});
const h2Port = await listen(h2);
const reports: { edges: { caller: Record<string, string>; host: string; port: number }[] }[] = [];
const collector = createHttpServer((req, res) => {
  let b = "";
  req.on("data", (d) => (b += d));
  req.on("end", () => {
    reports.push(JSON.parse(b));
    res.writeHead(202).end("{}");
  });
});
const collectorPort = await listen(collector);
const closedPort = await freePort();

const fake = await new FakeApiServer().start();
const pod = (ns: string, app: string, ip: string, sa: string) => {
  const p = deploymentPod(
    ns,
    `${app}-v1`,
    "5d8c9b8d6f",
    "q2x9z",
    { app, version: "v1" },
    { serviceAccount: sa },
  ) as any;
  p.status = { podIP: ip, podIPs: [{ ip }] };
  fake.put("pods", p);
};
pod("evil", "attacker", POD.evil, "attacker");
pod("shop", "frontend", POD.frontend, "frontend");
pod("bookinfo", "productpage", POD.victim, "bookinfo-productpage");
const svc = (name: string, ns: string, port: number, extra: Record<string, unknown> = {}) =>
  fake.put("services", {
    metadata: { name, namespace: ns, ...extra },
    spec: { clusterIP: "10.96.0.1", selector: { app: name }, ports: [{ name: "http", port }] },
  });
svc("ratings", "bookinfo", 9080);
svc("payments", "shop", 8080);
svc("ledger", "shop", 8080);
svc("audit", "shop", 8080);
svc("grpc", "shop", 50051);
svc("vault", "secure", 8200, { annotations: { "networking.istio.io/exportTo": "." } });
svc("meshtune-controller", "meshtune-system", 8080);
svc("meshtune-fallback", "meshtune-system", 80);
// Registry entries whose real destination the fallback cannot vouch for.
fake.put("services", {
  metadata: { name: "anywhere", namespace: "evil" },
  spec: { clusterIP: "10.96.0.77", ports: [{ name: "http", port: 8080 }] }, // no selector: EndpointSlices decide
});
fake.put("serviceentries", {
  apiVersion: "networking.istio.io/v1beta1",
  kind: "ServiceEntry",
  metadata: { name: "loop", namespace: "evil" },
  spec: {
    hosts: ["loop.example.com"],
    ports: [{ number: 15000, name: "http", protocol: "HTTP" }],
    location: "MESH_EXTERNAL",
    resolution: "STATIC",
    endpoints: [{ address: "127.0.0.1" }],
  },
});
const policy = (name: string, ns: string, spec: Record<string, unknown>) =>
  fake.put("authorizationpolicies", {
    apiVersion: "security.istio.io/v1",
    kind: "AuthorizationPolicy",
    metadata: { name, namespace: ns },
    spec,
  });
// payments admits only the shop frontend; ledger denies namespace evil; audit has a path rule.
policy("payments-allow", "shop", {
  selector: { matchLabels: { app: "payments" } },
  action: "ALLOW",
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }] }],
});
policy("ledger-deny", "shop", {
  selector: { matchLabels: { app: "ledger" } },
  action: "DENY",
  rules: [{ from: [{ source: { namespaces: ["evil"] } }] }],
});
policy("audit-paths", "shop", {
  selector: { matchLabels: { app: "audit" } },
  action: "ALLOW",
  rules: [{ to: [{ operation: { paths: ["/public/*"] } }] }],
});

const dir = mkdtempSync(join(tmpdir(), "meshtune-fallback-abuse-"));
writeFileSync(join(dir, "kubeconfig"), fake.kubeconfig());
const fbPort = await freePort();
const pins = [
  `${fq("ratings", "bookinfo")}:9080=127.0.0.1:${echoPort}`,
  `${fq("payments", "shop")}:8080=127.0.0.1:${echoPort}`,
  `${fq("ledger", "shop")}:8080=127.0.0.1:${echoPort}`,
  `${fq("audit", "shop")}:8080=127.0.0.1:${echoPort}`,
  `${fq("grpc", "shop")}:50051=127.0.0.1:${h2Port}`,
  `${fq("vault", "secure")}:8200=127.0.0.1:${echoPort}`,
  `${fq("meshtune-controller", "meshtune-system")}:8080=127.0.0.1:${collectorPort}`,
  `${fq("meshtune-fallback", "meshtune-system")}:80=127.0.0.1:${fbPort}`,
  `127.0.0.1:${adminPort}=127.0.0.1:${adminPort}`,
];
const fb: ChildProcess = spawn(
  "node",
  [
    CLI,
    "fallback",
    ...["--port", String(fbPort), "--metrics-port", "0", "--kubeconfig", join(dir, "kubeconfig")],
    ...["--collector", `http://127.0.0.1:${collectorPort}/v1/reports`, "--self", "meshtune-system/meshtune-fallback"],
    ...["--report-delay", "50ms", "--headers-timeout", "1s", "--max-connections-per-source", "40"],
    // Decisions never expire here: only a changed policy may end one (the test of the cache).
    ...["--decision-ttl", "1h"],
    ...pins.flatMap((p) => ["--resolve", p]),
  ],
  { stdio: ["ignore", "pipe", "pipe"] },
);
let logs = "";
fb.stdout!.on("data", (d) => (logs += d));
fb.stderr!.on("data", (d) => (logs += d));
await until("fallback ready", () => /catalog synced; ready/.test(logs), 15_000).catch((e) => {
  throw new Error(`${e.message}\n${logs}`);
});

/** One raw HTTP/1.1 exchange from `from` (a pod address); the answer's status line, headers and body. */
function raw(from: string, text: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: "127.0.0.1", port: fbPort, localAddress: from }, () => s.write(text));
    let b = "";
    s.on("data", (d) => {
      b += d;
      if (/\r\n\r\n[\s\S]*\n$/.test(b) || /content-length: 0\r\n\r\n$/i.test(b)) s.end();
    });
    s.on("end", () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(b)?.[1] ?? 0), text: b }));
    s.on("error", reject);
  });
}
const get = (from: string, host: string, extra = "", target = "/x") =>
  raw(from, `GET ${target} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n${extra}\r\n`);
const learnedHosts = () => reports.flatMap((r) => r.edges.map((e) => `${e.caller.namespace}:${e.host}:${e.port}`));

/** route()'s context for a cluster with no policies: meshtune-system denied, names resolved by `index`. */
const routeContext = (index: HostIndex) => ({
  index,
  clusterDomain: "cluster.local",
  trustDomain: "cluster.local",
  rootNamespace: "istio-system",
  denyNamespaces: new Set(["meshtune-system"]),
  policies: () => [],
  destination: () => null,
});

test("item 2: the caller is its pod address, never a header; a hidden address is refused", async () => {
  const forged = `By=spiffe://cluster.local/ns/meshtune-system/sa/meshtune-fallback;Hash=${"0".repeat(64)};Subject="";URI=spiffe://cluster.local/ns/shop/sa/frontend`;
  // From evil's address with frontend's identity written into XFCC (the TCP-chain case): still evil.
  const r = await get(POD.evil, "payments.shop:8080", `x-forwarded-client-cert: ${forged}\r\n`);
  assert.is(r.status, 403, r.text);
  assert.match(r.text, /no ALLOW policy admits evil\/attacker/);
  // The REDIRECT bind address hides the caller: nothing is forwarded for it.
  const hidden = await get("127.0.0.6", "ratings.bookinfo:9080", `x-forwarded-client-cert: ${forged}\r\n`);
  assert.is(hidden.status, 403);
  assert.match(hidden.text, /caller's address is hidden .*TPROXY/);
  // An app that forwards an XFCC it received is not refused for it.
  const ok = await get(POD.victim, "ratings:9080", `x-forwarded-client-cert: ${forged}\r\n`);
  assert.is(ok.status, 200, ok.text);
  assert.not.ok(seen.at(-1)!.headers["x-forwarded-client-cert"], "XFCC never reaches the upstream");
  await until("ratings learned for productpage", () =>
    learnedHosts().includes(`bookinfo:${fq("ratings", "bookinfo")}:9080`),
  );
});

test("item 4: no address in any notation, no loopback name, reaches anything", async () => {
  const before = adminHits;
  for (const host of [
    "127.1",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "169.254.169.254",
    "0xa9fea9fe",
    "10.96.0.1",
    POD.frontend,
    "localhost",
    "LocalHost.",
    "a.localhost",
  ]) {
    const r = await get(POD.evil, `${host}:${adminPort}`);
    assert.is(r.status, 400, `${host}: ${r.text}`);
    assert.match(r.text, /x-meshtune-fallback: address-host/);
  }
  assert.is(adminHits, before, "nothing on loopback was reached");
  // Names outside the registry are resolved here and refused when they resolve to a private address.
  const ctx = routeContext(new HostIndex());
  const caller = { namespace: "evil", serviceAccount: "attacker", podIp: POD.evil };
  for (const [addr, why] of [
    ["127.0.0.1", /loopback/],
    ["169.254.169.254", /link-local/],
    ["10.0.0.7", /private/],
    ["::ffff:127.0.0.1", /loopback/],
    ["fd00::1", /unique local/],
  ] as const) {
    const r = await route("rebind.example.com", caller, "HTTP", { ...ctx, lookup: async () => ["203.0.113.9", addr] });
    assert.ok(!r.ok && r.reason === "refused-address" && why.test(r.detail), JSON.stringify(r));
  }
  const pub = await route("api.example.com", caller, "HTTP", { ...ctx, lookup: async () => ["203.0.113.9"] });
  assert.equal(
    pub.ok && [pub.dial, pub.registered],
    ["203.0.113.9", false],
    "a public name is dialled at the address vetted",
  );
  for (const a of ["127.1", "0x7f.1", "017700000001", "1.2.3", "::1", "fe80::1"]) assert.ok(addressLike(a), a);
  for (const a of ["ratings", "a1.example.com", "0x7f.example.com", "1.2.3.com"]) assert.not.ok(addressLike(a), a);
});

test("item 4, review: registry entries that lead to loopback or anywhere are not vouched for; cluster DNS names outside the registry are refused", async () => {
  const before = adminHits;
  const loop = await get(POD.evil, "loop.example.com:15000");
  assert.is(loop.status, 503, loop.text);
  assert.match(loop.text, /lists endpoint 127\.0\.0\.1 \(loopback\)/);
  const anywhere = await get(POD.evil, "anywhere:8080");
  assert.is(anywhere.status, 503);
  assert.match(anywhere.text, /without a selector/);
  for (const host of ["pod-0.hl.shop.svc.cluster.local", "10-96-0-1.shop.pod.cluster.local"]) {
    const r = await get(POD.evil, `${host}:8080`);
    assert.is(r.status, 403, `${host}: ${r.text}`);
  }
  assert.is(adminHits, before);
  // A registry host is dialled at the address it resolved to, checked: never loopback or link-local.
  const idx = new HostIndex([
    {
      namespace: "shop",
      host: fq("cart", "shop"),
      vip: true,
      ports: [{ port: 80, name: "http", protocol: "HTTP" } as never],
      endpoints: 1,
      exportTo: [],
    },
  ]);
  const ctx = routeContext(idx);
  const caller = { namespace: "shop", serviceAccount: "frontend", podIp: POD.frontend };
  const bad = await route("cart", caller, "HTTP", { ...ctx, lookup: async () => ["127.0.0.1"] });
  assert.ok(!bad.ok && bad.reason === "refused-address", JSON.stringify(bad));
  const vip = await route("cart", caller, "HTTP", { ...ctx, lookup: async () => ["240.240.0.7"] });
  assert.equal(
    vip.ok && vip.dial,
    "240.240.0.7",
    "an auto-allocated ServiceEntry VIP or a ClusterIP is fine, and dialled as checked",
  );
  // Not in the list: characters a resolver may read its own way never reach one.
  for (const name of ["user@127.1", "a b.example.com", "x%00.example.com"]) {
    const r = await route(name, caller, "HTTP", { ...ctx, lookup: async () => ["203.0.113.9"] });
    assert.ok(!r.ok && r.reason === "bad-host", `${name}: ${JSON.stringify(r)}`);
  }
  const slow = await route("slow.example.com", caller, "HTTP", { ...ctx, lookup: () => new Promise(() => {}) });
  assert.ok(!slow.ok && /timed out/.test(slow.detail), "a lookup that never answers is cut off");
});

test("item 7, review: principals of another trust domain and inner namespace wildcards are never taken as decided", () => {
  const dest = { namespace: "shop", labels: { app: "payments" } };
  const evil = { namespace: "team-x-dev", serviceAccount: "a", trustDomain: "corp.example" };
  const deny = (source: Record<string, unknown>) => [
    { metadata: { namespace: "shop", name: "d" }, spec: { action: "DENY", rules: [{ from: [{ source }] }] } },
  ];
  // Istio also matches cluster.local/... against the local trust domain and its aliases.
  const a = authorize(evil, dest, deny({ principals: ["cluster.local/ns/team-x-dev/sa/a"] }), "istio-system");
  assert.equal([a.allowed, !a.allowed && a.proven], [false, false]);
  // Istio turns every * of a namespace into a wildcard.
  const b = authorize(evil, dest, deny({ namespaces: ["team-*-dev"] }), "istio-system");
  assert.equal([b.allowed, !b.allowed && b.proven], [false, false]);
  const c = authorize(evil, dest, deny({ namespaces: ["other"] }), "istio-system");
  assert.ok(c.allowed, "a DENY that provably does not match allows");
});

test("items 5 and 6: never to itself, never to meshtune's endpoints; a looped request stops", async () => {
  const postsBefore = reports.length;
  for (const host of [
    "meshtune-fallback.meshtune-system",
    `${fq("meshtune-fallback", "meshtune-system")}:80`,
    "meshtune-controller.meshtune-system:8080",
  ]) {
    const r = await raw(
      POD.evil,
      `POST /v1/reports HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`,
    );
    assert.is(r.status, 403, r.text);
    assert.match(r.text, /x-meshtune-fallback: meshtune-endpoint/);
  }
  const looped = await get(POD.evil, "ratings.bookinfo:9080", "x-meshtune-fallback-hop: 1\r\n");
  assert.is(looped.status, 508);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(
    reports.slice(postsBefore).every((r) => r.edges.every((e) => !e.host.includes("meshtune-"))),
    "nothing about meshtune's own endpoints was reported",
  );
  assert.ok(
    seen.every((s) => s.headers["x-meshtune-fallback-hop"] === "1"),
    "every forwarded request carries the hop marker",
  );
});

test("item 7: exportTo and AuthorizationPolicies the caller would not pass are never bypassed; the host is learned instead", async () => {
  const n = seen.length;
  const vault = await get(POD.evil, "vault.secure:8200");
  assert.is(vault.status, 403);
  assert.match(vault.text, /not-exported/);
  const payments = await get(POD.evil, "payments.shop:8080");
  assert.is(payments.status, 403);
  const ledger = await get(POD.evil, "ledger.shop:8080");
  assert.is(ledger.status, 403);
  assert.match(ledger.text, /denied by shop\/ledger-deny/);
  const audit = await get(POD.evil, "audit.shop:8080");
  assert.is(audit.status, 503, "a rule on operations cannot be proven here");
  assert.match(audit.text, /retry-after: 5/i);
  assert.is(seen.length, n, "none of them reached an upstream");
  await until("policy-protected hosts learned for the caller", () =>
    [fq("payments", "shop"), fq("ledger", "shop"), fq("audit", "shop")].every((h) =>
      learnedHosts().includes(`evil:${h}:8080`),
    ),
  );
  assert.not.ok(
    learnedHosts().some((h) => h.includes("vault")),
    "an unexported host is not learned",
  );
  const allowed = await get(POD.frontend, "payments.shop:8080");
  assert.is(allowed.status, 200, "the caller the policy admits is forwarded");
});

test("item 9: origin-form only; control, forwarding and identity headers are stripped", async () => {
  const smuggle = await get(POD.victim, "ratings.bookinfo:9080", "", "http://169.254.169.254/latest/meta-data");
  assert.is(smuggle.status, 400);
  assert.match(smuggle.text, /bad-target/);
  const n = seen.length;
  const r = await get(
    POD.victim,
    "ratings.bookinfo:9080",
    [
      "x-envoy-max-retries: 50",
      "x-envoy-original-dst-host: 127.0.0.1:15000",
      "x-envoy-internal: true",
      "x-envoy-peer-metadata-id: router~1.2.3.4~x~cluster.local",
      "x-forwarded-for: 10.0.0.1",
      "forwarded: for=10.0.0.1",
      "x-custom-hop: 1",
      "connection: close, x-custom-hop",
      "x-trace: kept",
    ]
      .map((h) => `${h}\r\n`)
      .join(""),
    "http://ratings.bookinfo:9080/abs?q=1",
  );
  assert.is(r.status, 200, r.text);
  const up = seen[n];
  assert.is(up.path, "/abs?q=1");
  for (const h of [
    "x-envoy-max-retries",
    "x-envoy-original-dst-host",
    "x-envoy-internal",
    "x-envoy-peer-metadata-id",
    "x-forwarded-for",
    "forwarded",
    "x-custom-hop",
  ])
    assert.is(up.headers[h], undefined, h);
  assert.is(up.headers["x-trace"], "kept");
  assert.not.match(r.text, /x-envoy-upstream-service-time/i, "Envoy control headers are stripped from answers too");
});

test("item 8: slow headers are cut off by the fallback itself; one source cannot hold every connection", async () => {
  const slow = netConnect({ host: "127.0.0.1", port: fbPort, localAddress: POD.evil });
  slow.on("error", () => {});
  const t0 = Date.now();
  let drip: NodeJS.Timeout;
  await new Promise<void>((r) =>
    slow.on("connect", () => {
      slow.write("GET / HTTP/1.1\r\n");
      drip = setInterval(() => slow.writable && slow.write("x-a: b\r\n"), 200);
      r();
    }),
  );
  await new Promise((r) => slow.on("close", r));
  clearInterval(drip!);
  assert.ok(Date.now() - t0 < 5000, "closed at the headers deadline although bytes kept coming");
  // 60 idle connections from evil: the per-source cap (40) refuses the rest; another pod still gets served.
  const held: Socket[] = [];
  let closedEarly = 0;
  for (let i = 0; i < 60; i++) {
    const s = netConnect({ host: "127.0.0.1", port: fbPort, localAddress: POD.evil });
    s.on("error", () => {});
    s.on("close", () => closedEarly++);
    held.push(s);
  }
  await until("the per-source cap refusing the excess", () => closedEarly >= 20, 10_000).catch(() => {});
  assert.ok(closedEarly >= 20, `${closedEarly} of 60 refused`);
  const other = await get(POD.victim, "ratings.bookinfo:9080");
  assert.is(other.status, 200);
  for (const s of held) s.destroy();
});

test("item 10: learned only after the upstream answered; one caller's flood cannot evict another's entries", async () => {
  // A registered host whose upstream is down: 502, and never reported.
  const dead = await raw(
    POD.victim,
    `GET / HTTP/1.1\r\nhost: ratings.bookinfo:${closedPort}\r\nconnection: close\r\n\r\n`,
  );
  assert.ok(dead.status === 502 || dead.status === 400, dead.text);
  await new Promise((r) => setTimeout(r, 200));
  assert.not.ok(learnedHosts().some((h) => h.endsWith(`:${closedPort}`)));
  // The reporter: 1,300 distinct hosts from one caller, then one from another.
  const reg = new Registry();
  const rep = new LearnReporter({ url: "http://127.0.0.1:1/none", delayMs: 60_000 }, reg);
  const flooder = { namespace: "evil", serviceAccount: "attacker", podIp: POD.evil };
  for (let i = 0; i < 1300; i++)
    rep.add({ caller: flooder, host: `h${i}.example.com`, port: 443, proto: "TLS", registered: false });
  rep.add({
    caller: { namespace: "bookinfo", serviceAccount: "p", podIp: POD.victim },
    host: "ok.example.com",
    port: 443,
    proto: "TLS",
    registered: false,
  });
  const pending = (rep as any).pending as Map<string, { host: string }>;
  assert.ok(
    [...pending.values()].some((e) => e.host === "ok.example.com"),
    "the other caller's entry is kept",
  );
  assert.ok(pending.size <= 101);
  assert.match(await reg.metrics(), /meshtune_fallback_learned_dropped_total\{reason="caller-share"\} 1200/);
  rep.stop();
});

test("item 11: HTTP/2 prior knowledge and gRPC reach an unlearned destination, trailers intact", async () => {
  const session = h2connect(`http://127.0.0.1:${fbPort}`, {
    createConnection: () => netConnect({ host: "127.0.0.1", port: fbPort, localAddress: POD.frontend }),
  });
  session.on("error", () => {});
  const res = await new Promise<{ status: number; body: string; trailers: Record<string, unknown> }>(
    (resolve, reject) => {
      const rq = session.request({
        ":method": "POST",
        ":path": "/shop.Payments/Charge",
        ":authority": "grpc.shop:50051",
        "content-type": "application/grpc",
        te: "trailers",
      });
      let status = 0,
        body = "",
        trailers = {};
      rq.on("response", (h) => (status = Number(h[":status"])));
      rq.on("trailers", (t) => (trailers = t));
      rq.on("data", (d) => (body += d));
      rq.on("end", () => resolve({ status, body, trailers }));
      rq.on("error", reject);
      rq.end(Buffer.from([0, 0, 0, 0, 0]));
    },
  );
  session.close();
  assert.is(res.status, 200);
  assert.is(res.body, `grpc /shop.Payments/Charge via ${fq("grpc", "shop")}:50051`);
  assert.is((res.trailers as any)["grpc-status"], "0");
  await until("grpc learned for frontend", () => learnedHosts().includes(`shop:${fq("grpc", "shop")}:50051`));
});

test("cached decisions end with the policy they were made under; a keep-alive connection keeps one deadline", async () => {
  // One keep-alive connection from the admitted caller: 30 forwarded requests, then a policy
  // change, then requests on the same connection until the refusal shows. Decisions are cached
  // per caller identity (fallback/decision-cache.ts), so this is the case that would go stale.
  const s = netConnect({ host: "127.0.0.1", port: fbPort, localAddress: POD.frontend });
  await new Promise((r) => s.on("connect", r));
  let buf = "";
  s.on("data", (d) => (buf += d));
  const ask = async (): Promise<number> => {
    buf = "";
    s.write(`GET /ka HTTP/1.1\r\nhost: payments.shop:8080\r\n\r\n`);
    await until("an answer on the kept-alive connection", () => {
      const head = buf.indexOf("\r\n\r\n");
      if (head < 0) return false;
      const len = /content-length: (\d+)\r\n/i.exec(buf.slice(0, head));
      return len ? buf.length >= head + 4 + Number(len[1]) : buf.endsWith("\r\n0\r\n\r\n");
    });
    return Number(/^HTTP\/1\.1 (\d+)/.exec(buf)?.[1] ?? 0);
  };
  for (let i = 0; i < 30; i++) assert.is(await ask(), 200, `request ${i}`);
  policy("payments-allow", "shop", {
    selector: { matchLabels: { app: "payments" } },
    action: "ALLOW",
    rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/checkout"] } }] }],
  });
  const askUntil = async (want: number) => {
    const end = Date.now() + 10_000;
    let got: number;
    while ((got = await ask()) !== want && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    return got;
  };
  assert.is(await askUntil(403), 403, "the new policy refuses frontend");
  // Put the policy back: the next decision admits frontend again.
  policy("payments-allow", "shop", {
    selector: { matchLabels: { app: "payments" } },
    action: "ALLOW",
    rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }] }],
  });
  assert.is(await askUntil(200), 200, "the restored policy admits frontend");
  // Idle past the headers deadline (1 s here): the fallback answers 408 and closes.
  const closed = new Promise((r) => s.on("close", r));
  await closed;
  assert.match(buf, /408 Request Timeout/);
  assert.not.match(logs, /MaxListenersExceeded/, "no listener per request piles up on the connection");
  // Hosts no name can be are refused before anything is decided or kept.
  const long = await get(POD.frontend, `${"a".repeat(300)}.shop:8080`);
  assert.is(long.status, 400);
  assert.match(long.text, /bad-host/);
});

test("pipelined requests: the headers deadline waits while any of them is being answered", async () => {
  const s = netConnect({ host: "127.0.0.1", port: fbPort, localAddress: POD.victim });
  await new Promise((r) => s.on("connect", r));
  let buf = "";
  s.on("data", (d) => (buf += d));
  const closed = new Promise((r) => s.on("close", r));
  // Both at once: /fast is answered at once, /slow after the 1 s deadline would have fired.
  s.write(
    "GET /fast HTTP/1.1\r\nhost: ratings.bookinfo:9080\r\n\r\nGET /slow HTTP/1.1\r\nhost: ratings.bookinfo:9080\r\n\r\n",
  );
  await until("both answers", () => (buf.match(/HTTP\/1\.1 200/g) ?? []).length >= 2 || /408/.test(buf), 5000);
  assert.equal(buf.match(/HTTP\/1\.1 \d+/g)?.slice(0, 2), ["HTTP/1.1 200", "HTTP/1.1 200"], buf);
  assert.match(buf, /"path":"\/slow"/);
  await closed; // then idle: the deadline closes it
  assert.match(buf, /408 Request Timeout/);
});

test("a pipelining flood on one connection is cut off, not forwarded: at most 16 requests of a connection are in flight", async () => {
  const n = seen.length;
  const s = netConnect({ host: "127.0.0.1", port: fbPort, localAddress: POD.evil });
  s.on("error", () => {});
  const closed = new Promise((r) => s.on("close", r));
  await new Promise((r) => s.on("connect", r));
  s.write("GET /flood HTTP/1.1\r\nhost: ratings.bookinfo:9080\r\n\r\n".repeat(5000));
  const cut = await Promise.race([closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 10_000))]);
  s.destroy();
  assert.ok(cut, "the flooding connection is closed by the fallback");
  assert.ok(seen.length - n <= 16, `${seen.length - n} of 5000 reached the upstream`);
  const other = await get(POD.victim, "ratings.bookinfo:9080");
  assert.is(other.status, 200, "the fallback still serves");
});

test.after(async () => {
  fb.kill("SIGTERM");
  for (const s of [echo, admin, collector]) {
    s.closeAllConnections();
    s.close();
  }
  h2.close();
  await fake.stop();
});

test.run();

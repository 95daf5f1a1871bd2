// The shipped manifests and the controller against a real kube-apiserver (test/helpers/
// kube-apiserver.ts): `kubectl apply --server-side -k manifests/` as a user would, then the
// controller process authenticated with a token of the manifests' own ServiceAccount, so
// manifests/rbac.yaml is what allows or denies it. Real Lease, server-side apply, Events,
// TokenReview, SubjectAccessReview and pod-bound tokens (node claims).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { realApiServer, type RealApiServer } from "./helpers/kube-apiserver.js";
import { spawnController, type ControllerProc } from "./helpers/controller-proc.js";
import { ROOT } from "./helpers/cli.js";
import { report } from "./fixtures/report.js";
import { deploymentPod } from "./fixtures/pods.js";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { createServer, connect as netConnect, type AddressInfo, type Socket } from "node:net";

let k: RealApiServer;

/** [apiGroup, resource, verb] the manifests' (Cluster)Roles bound to a meshtune ServiceAccount grant. */
function grantedTo(sa: string): [string, string, string][] {
  const docs = ["rbac.yaml", "fallback.yaml", "optional/tuning-apply.yaml"].flatMap((f) =>
    parseAllDocuments(readFileSync(join(ROOT, "manifests", f), "utf8")).map((d) => d.toJS()),
  );
  const roles = new Set(
    docs
      .filter((d) => /RoleBinding$/.test(d?.kind ?? "") && d.subjects?.some((s: { name: string }) => s.name === sa))
      .map((d) => `${d.roleRef.kind}/${d.roleRef.name}`),
  );
  const out: [string, string, string][] = [];
  for (const d of docs)
    if (/Role$/.test(d?.kind ?? "") && roles.has(`${d.kind}/${d.metadata.name}`))
      for (const r of d.rules ?? [])
        for (const g of r.apiGroups ?? [])
          for (const res of r.resources ?? []) for (const v of r.verbs) out.push([g, res, v]);
  return out;
}
const json = (args: string[]) => JSON.parse(k.kubectl([...args, "-o", "json"]));
async function until<T>(
  what: string,
  f: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    let v: T | null | undefined | false;
    try {
      v = await f();
    } catch {
      v = null;
    }
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test.before(async () => {
  k = await realApiServer();
  console.log(`  real kube-apiserver + etcd ready in ${k.startupMs} ms, RSS ${k.rssMiB().toFixed(0)} MiB`);
});

test("manifests apply as a user would: kubectl apply --server-side -k manifests/", () => {
  const out = k.installManifests();
  for (const o of [
    "deployment.apps/meshtune-controller serverside-applied",
    "deployment.apps/meshtune-fallback serverside-applied",
    "daemonset.apps/meshtune-node serverside-applied",
    "authorizationpolicy.security.istio.io/meshtune-fallback serverside-applied",
    "peerauthentication.security.istio.io/meshtune-fallback serverside-applied",
  ])
    assert.ok(out.includes(o), `${o}\n${out}`);
  // The optional tuning RBAC applies too (it is left out of the base on purpose).
  k.kubectl(["apply", "--server-side", "-f", join(ROOT, "manifests", "optional", "tuning-apply.yaml")]);
  // kubectl auth can-i prints yes/no and exits 1 on "no".
  const can = (sa: string, verb: string, what: string, ns = "bookinfo") => {
    try {
      return k
        .kubectl(["auth", "can-i", verb, what, "-n", ns, `--as=system:serviceaccount:meshtune-system:${sa}`])
        .trim();
    } catch {
      return "no";
    }
  };
  assert.is(can("meshtune-controller", "patch", "sidecars.networking.istio.io"), "yes");
  assert.is(can("meshtune-controller", "update", "configmaps/meshtune-learned"), "yes");
  assert.is(can("meshtune-controller", "update", "configmaps/other"), "no");
  assert.is(can("meshtune-fallback", "list", "authorizationpolicies.security.istio.io"), "yes");
  assert.is(can("meshtune-fallback", "list", "pods"), "yes");
  assert.is(can("meshtune-fallback", "create", "configmaps"), "no");
});

test("the controller runs with its own ServiceAccount's token: Lease, Sidecar by SSA, learned state, Events, real TokenReview/SubjectAccessReview and pod-bound agent tokens", async () => {
  // A namespace meshtune manages, a workload (pods stay Pending: no scheduler or kubelet here), a node.
  // Idempotent: another test file of this run may have created it.
  k.kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "bookinfo" } }),
  );
  k.kubectl(["label", "namespace", "bookinfo", "meshtune.io/enabled=true"]);
  k.kubectl(["create", "serviceaccount", "bookinfo-reviews", "-n", "bookinfo"]);
  const reviewsPod = {
    apiVersion: "v1",
    kind: "Pod",
    ...deploymentPod(
      "bookinfo",
      "reviews-v2",
      "7bf8c9648f",
      "2lcgn",
      { app: "reviews", version: "v2" },
      {
        serviceAccount: "bookinfo-reviews",
      },
    ),
  };
  reviewsPod.spec.nodeName = "node-a";
  k.kubectl(
    ["apply", "--server-side", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        { apiVersion: "v1", kind: "Node", metadata: { name: "node-a" } },
        {
          apiVersion: "v1",
          kind: "Service",
          metadata: { name: "ratings", namespace: "bookinfo" },
          spec: { ports: [{ name: "http", port: 9080 }], selector: { app: "ratings" } },
        },
        // As a Deployment's ReplicaSet would have made it (owner reference): its workload is reviews-v2.
        reviewsPod,
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "meshtune-node-abcde", namespace: "meshtune-system" },
          spec: {
            serviceAccountName: "meshtune-node",
            nodeName: "node-a",
            containers: [{ name: "agent", image: "x" }],
          },
        },
      ],
    }),
  );
  const ctlToken = k.token("meshtune-system", "meshtune-controller");
  let c: ControllerProc | null = null;
  try {
    c = spawnController(k.kubeconfigFor(ctlToken, "meshtune-controller"), [
      "--lease-namespace",
      "meshtune-system",
      "--mode",
      "apply",
      "--flush-delay",
      "100ms",
      "--min-window",
      "1s",
    ]);
    assert.is(await c.ready(), 200, c.stderr());
    await until(
      "the real Lease",
      () => json(["get", "lease", "meshtune-controller", "-n", "meshtune-system"]).spec.holderIdentity,
    );

    // A report by the workload's own token (the token port path): TokenReview by the real API server.
    const reviewsToken = k.token("bookinfo", "bookinfo-reviews");
    const post = (body: unknown, token: string) =>
      fetch(c!.url("/v1/reports"), {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, text: await r.text() }));
    const r = await post(report({ unknown: [] }), reviewsToken);
    assert.is(r.status, 202, r.text);
    const sc = await until("the Sidecar applied by server-side apply", () =>
      json(["get", "sidecars.networking.istio.io", "reviews-v2", "-n", "bookinfo", "--show-managed-fields"]),
    );
    assert.ok(sc.spec.egress[0].hosts.includes("bookinfo/ratings.bookinfo.svc.cluster.local"));
    assert.ok(
      sc.metadata.managedFields.some(
        (m: { manager: string; operation: string }) => m.manager === "meshtune" && m.operation === "Apply",
      ),
    );
    const cm = await until("learned state saved (read-merge-replace under resourceVersion)", () =>
      json(["get", "configmap", "meshtune-learned", "-n", "bookinfo"]),
    );
    assert.match(cm.data["reviews-v2"], /ratings\.bookinfo/);
    await until("an Event for the apply", () =>
      json(["get", "events", "-n", "bookinfo"]).items.some((e: { reason: string }) => e.reason === "Applied"),
    );

    // Reads: real SubjectAccessReview against the manifests' meshtune-reader role.
    k.kubectl(["create", "serviceaccount", "alice", "-n", "default"]);
    k.kubectl(["create", "serviceaccount", "bob", "-n", "default"]);
    k.kubectl([
      "create",
      "clusterrolebinding",
      "alice-reads",
      "--clusterrole=meshtune-reader",
      "--serviceaccount=default:alice",
    ]);
    const get = (path: string, token: string) =>
      fetch(c!.url(path), { headers: { authorization: `Bearer ${token}` } }).then((x) => x.status);
    assert.is(await get("/recommendations", k.token("default", "alice")), 200);
    assert.is(await get("/recommendations", k.token("default", "bob")), 403);
    assert.is(await get("/api/dashboard", k.token("default", "alice")), 200);
    // The mesh's AuthorizationPolicy admits GET /ui, /ui/* and /api/* from any identity: every data
    // read behind it must still be refused to an identity RBAC does not bind (path variants included).
    const bob = k.token("default", "bob");
    for (const path of ["/api/dashboard", "/api/diagnose?since=1h", "/api/metrics/edges"])
      assert.is(await get(path, bob), 403, path);
    for (const path of ["/api/dashboard?x=1", "/api/dashboard/", "/API/dashboard", "/api/dashboard/../dashboard"])
      assert.ok([403, 404].includes(await get(path, bob)), `${path}: no data for bob`);
    const anon = await fetch(c!.url("/api/dashboard")).then((x) => x.status);
    assert.ok(anon === 401 || anon === 403, `no credentials: ${anon}`);

    // An agent's node comes from its pod-bound token's claim (TokenRequest bound to the agent pod on node-a).
    const agentPod = json(["get", "pod", "meshtune-node-abcde", "-n", "meshtune-system"]);
    const agentToken = k.token("meshtune-system", "meshtune-node", {
      name: agentPod.metadata.name,
      uid: agentPod.metadata.uid,
    });
    const agent = (node: string) => ({
      v: 2,
      kind: "agent",
      node,
      pods: [
        { namespace: "bookinfo", name: "reviews-v2-7bf8c9648f-2lcgn", edges: [{ dst: "10.96.0.20:9080", count: 1 }] },
      ],
    });
    const lie = await post(agent("node-b"), agentToken);
    assert.is(lie.status, 403, lie.text);
    assert.match(lie.text, /token is bound to node node-a, not node-b/);
    const ok = await post(agent("node-a"), agentToken);
    assert.is(ok.status, 202, ok.text);
    const unbound = await post(agent("node-a"), k.token("meshtune-system", "meshtune-node"));
    assert.is(unbound.status, 403, "a token not bound to a pod names no node");

    // The shipped RBAC sufficed: no API call of the controller was refused (403 Forbidden).
    const refused = c
      .stderr()
      .split("\n")
      .filter((l) => /HTTP-Code: 403| is forbidden: /.test(l));
    assert.equal(refused, [], refused.join("\n"));
    // What the manifests grant and the controller never used in this run (the audit log): reported.
    const used = k.audited("system:serviceaccount:meshtune-system:meshtune-controller");
    assert.ok(used.length > 0, "the audit log saw the controller");
    assert.not.ok(
      used.some((u) => u.code === 403),
      JSON.stringify(used.filter((u) => u.code === 403)),
    );
    const unused = grantedTo("meshtune-controller").filter(
      ([g, r, v]) => !used.some((u) => u.group === g && u.resource === r && u.verb === v),
    );
    console.log(
      `  controller: ${used.length} audited requests; granted but not used in this run: ${unused.map(([g, r, v]) => `${v} ${g ? `${r}.${g}` : r}`).join(", ") || "none"}`,
    );
  } finally {
    c?.p.kill("SIGTERM");
  }
});

/** A TCP proxy in front of the API server that can cut a replica off (connections reset, new ones refused). */
async function partitionable(target: string) {
  const { hostname, port } = new URL(target);
  const open = new Set<Socket>();
  let cut = false;
  const server = createServer((c) => {
    if (cut) return void c.destroy();
    const u = netConnect(Number(port), hostname);
    for (const x of [c, u]) {
      open.add(x);
      x.on("error", () => {});
      x.on("close", () => open.delete(x));
    }
    c.pipe(u).pipe(c);
    c.on("close", () => u.destroy());
    u.on("close", () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    partition() {
      cut = true;
      for (const x of open) x.destroy();
    },
    heal() {
      cut = false;
    },
    close() {
      for (const x of open) x.destroy();
      server.close();
    },
  };
}

test("issue 29 item 5: a leader cut off from the API server stops answering 202, a new one takes over, and the old one's late save never drops the new leader's state", async () => {
  k.kubectl(["delete", "lease", "meshtune-controller", "-n", "meshtune-system", "--ignore-not-found"]);
  const token = k.token("meshtune-system", "meshtune-controller");
  const proxy = await partitionable(k.url);
  const kcA = k.kubeconfigFor(token, "a").replace(/$/, "");
  const { readFileSync: rf, writeFileSync: wf } = await import("node:fs");
  wf(kcA, rf(kcA, "utf8").replace(k.url, proxy.url));
  const flags = (id: string) => [
    ...["--lease-namespace", "meshtune-system", "--mode", "apply", "--flush-delay", "100ms", "--identity", id],
    ...["--lease-duration", "6s", "--renew-deadline", "4s", "--retry-period", "1s"],
  ];
  // Everything that can throw comes before the first process starts: a process started outside
  // the try below would outlive the test.
  const reviewsToken = k.token("bookinfo", "bookinfo-reviews");
  const a = spawnController(kcA, flags("replica-a"));
  let b: ControllerProc | null = null;
  const post = (c: ControllerProc, host: string) =>
    fetch(c.url("/v1/reports"), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${reviewsToken}` },
      body: JSON.stringify(
        report({
          unknown: [],
          edges: [{ dir: "outbound", cluster: `outbound|9080||${host}.bookinfo.svc.cluster.local`, count: 1 }],
        }),
      ),
    }).then(async (r) => ({ status: r.status, text: await r.text() }));
  const stored = () => {
    const cm = json(["get", "configmap", "meshtune-learned", "-n", "bookinfo"]);
    return String(cm.data?.["reviews-v2"] ?? "");
  };
  try {
    assert.is(await a.ready(), 200, a.stderr());
    await until(
      "replica-a leads",
      () => json(["get", "lease", "meshtune-controller", "-n", "meshtune-system"]).spec.holderIdentity === "replica-a",
    );
    b = spawnController(k.kubeconfigFor(token, "b"), flags("replica-b"));
    assert.is(await b.ready(), 200, b.stderr());
    const r1 = await post(a, "ratings");
    assert.is(r1.status, 202, r1.text);
    await until("ratings saved", () => stored().includes("ratings.bookinfo"));

    proxy.partition();
    // Within half the renew deadline the leader stops answering 202 (fenced), and says why.
    const fenced = await until(
      "replica-a fenced",
      async () => {
        const r = await post(a, "details");
        return r.status === 503 ? r : null;
      },
      10_000,
    );
    assert.match((await fenced).text, /leadership unconfirmed|no leader/);
    await until(
      "replica-b takes over",
      () => json(["get", "lease", "meshtune-controller", "-n", "meshtune-system"]).spec.holderIdentity === "replica-b",
      20_000,
    );
    const r3 = await until("replica-b accepts", async () => {
      const r = await post(b!, "productpage");
      return r.status === 202 ? r : null;
    });
    assert.ok(await r3);
    await until("productpage saved by the new leader", () => stored().includes("productpage.bookinfo"));

    proxy.heal();
    // The deposed replica reconnects; whatever it still saves is merged, never a replacement.
    await new Promise((r) => setTimeout(r, 4000));
    const after = stored();
    assert.ok(after.includes("productpage.bookinfo") && after.includes("ratings.bookinfo"), after);
  } finally {
    a.p.kill("SIGKILL");
    b?.p.kill("SIGKILL");
    proxy.close();
  }
});

test.run();

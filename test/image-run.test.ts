// Run as shipped: each container of each manifest started from the image's file tree
// (test/helpers/image-tree.ts: the Dockerfile's COPY and `ln -s` lines) with the manifest's
// args, env and user, against a real kube-apiserver, authenticated with the manifests' own
// ServiceAccounts. What stands in for the kubelet, said once: the downward-API env
// (status.podIP → 127.0.0.1, spec.nodeName → node-a); in-cluster config → KUBECONFIG with a
// TokenRequest token of the pod's ServiceAccount; the agent's projected token → a file with a
// pod-bound token; cluster DNS → 127.0.0.1; the node's kubepods cgroup (MESHTUNE_CGROUP) → a
// child cgroup the test creates (never the root). A file missing from the image fails here.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync, chmodSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { parseAllDocuments } from "yaml";
import { realApiServer, type RealApiServer } from "./helpers/kube-apiserver.js";
import { assembleImageTree, type ImageTree } from "./helpers/image-tree.js";
import { bpfUnavailable, removeCgroups, sh, CGROUP_ROOT } from "./helpers/bpf.js";
import { ROOT } from "./helpers/cli.js";

type Obj = Record<string, any>;
let k: RealApiServer;
let tree: ImageTree;
let objs: Obj[];
const NS = "meshtune-system";

test.before(async () => {
  k = await realApiServer();
  k.installManifests();
  k.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: "node-a" } }));
  tree = assembleImageTree();
  objs = parseAllDocuments(k.kubectl(["kustomize", join(ROOT, "manifests")]))
    .map((d) => d.toJS() as Obj)
    .filter(Boolean);
});

const secretDir = () => {
  const d = mkdtempSync(join(tmpdir(), "meshtune-sa-"));
  chmodSync(d, 0o755);
  return d;
};

interface Run {
  p: ChildProcess;
  out: () => string;
  stop: () => Promise<void>;
}

/** Start `kind/name`'s first container as the image would run it, with the stand-ins above. */
function launch(kind: string, name: string, extraEnv: Record<string, string>, mapArg = (a: string) => a): Run {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name)!;
  const pod = o.spec.template.spec,
    c = pod.containers[0];
  const field: Record<string, string> = {
    "status.podIP": "127.0.0.1",
    "metadata.name": `${name}-0`,
    "metadata.namespace": NS,
    "spec.serviceAccountName": pod.serviceAccountName,
    "spec.nodeName": "node-a",
  };
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
  for (const e of c.env ?? []) env[e.name] = e.value ?? field[e.valueFrom?.fieldRef?.fieldPath] ?? "";
  Object.assign(env, extraEnv);
  for (const [k2, v] of Object.entries(env)) if (v.startsWith("/usr/local/bin/")) env[k2] = tree.path(v);
  // $(VAR) in args expands from the container's env, as the kubelet does.
  const args = (c.args ?? []).map((a: string) => mapArg(a.replace(/\$\((\w+)\)/g, (_m, v) => env[v] ?? "")));
  const uid = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser ?? 65532;
  const gid = c.securityContext?.runAsGroup ?? pod.securityContext?.runAsGroup ?? 0;
  // The container's capabilities: with `drop: [ALL]` only those added stay in the bounding set
  // (what a non-privileged container gets), so a loader needing more fails here as in a pod.
  const sc = c.securityContext ?? {};
  const caps: string[] | null = sc.privileged
    ? null
    : sc.capabilities?.drop?.includes("ALL")
      ? (sc.capabilities.add ?? [])
      : null;
  const bounded = caps
    ? ["setpriv", "--bounding-set", ["-all", ...caps.map((x: string) => `+${x.toLowerCase()}`)].join(","), "--"]
    : [];
  // ENTRYPOINT ["meshtune"]: /usr/local/bin/meshtune, a symlink into /opt/meshtune/build.
  const argv = [...bounded, process.execPath, tree.path("/usr/local/bin/meshtune"), ...args];
  const p = spawn(argv[0], argv.slice(1), {
    cwd: "/",
    env,
    uid,
    gid,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  p.stdout!.on("data", (d) => (out += d));
  p.stderr!.on("data", (d) => (out += d));
  return {
    p,
    out: () => out,
    stop: async () => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const done = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await done;
    },
  };
}

/** KUBECONFIG with a token of `sa`, readable by the container's user. */
function inCluster(sa: string): string {
  const d = secretDir();
  const f = join(d, "kubeconfig");
  writeFileSync(f, readFileSync(k.kubeconfigFor(k.token(NS, sa), `image-${sa}`), "utf8"), { mode: 0o644 });
  return f;
}

async function until(what: string, f: () => Promise<boolean> | boolean, log: () => string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await Promise.resolve(f()).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}:\n${log().slice(-3000)}`);
}
const status = (url: string, headers: Record<string, string> = {}) =>
  fetch(url, { headers }).then(
    (r) => r.status,
    () => 0,
  );

// The agent posts only when it has edges or kernel signals; its token path to the controller is
// exercised in test/real-apiserver.test.ts (pod-bound token, node claim) and its traffic in
// test/bpf-node.test.ts.
test("controller and node agent from the image, as the manifests run them: Ready, /ui/ served, datapath and TCP probes loaded in a child cgroup, the node published, nothing forbidden", async () => {
  const why = bpfUnavailable();
  const root = join(CGROUP_ROOT, `meshtune-test-img-${randomBytes(3).toString("hex")}`);
  const kubepods = join(root, "kubepods");
  mkdirSync(kubepods, { recursive: true });
  const runs: Run[] = [];
  try {
    const ctl = launch("Deployment", "meshtune-controller", { KUBECONFIG: inCluster("meshtune-controller") });
    runs.push(ctl);
    await until("controller Ready", async () => (await status("http://127.0.0.1:8080/readyz")) === 200, ctl.out);
    const ui = await fetch("http://127.0.0.1:8080/ui/");
    assert.is(ui.status, 200, "the dashboard bundle is in the image");
    assert.match(await ui.text(), /<script/);
    if (why) return console.log(`  agent part skipped: ${why}`);

    // The agent's projected token, bound to its pod on node-a (the node claim names its node).
    k.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "meshtune-node-img", namespace: NS },
        spec: { serviceAccountName: "meshtune-node", nodeName: "node-a", containers: [{ name: "agent", image: "x" }] },
      }),
    );
    const uidOf = JSON.parse(k.kubectl(["get", "pod", "meshtune-node-img", "-n", NS, "-o", "json"])).metadata.uid;
    const tokDir = secretDir();
    writeFileSync(join(tokDir, "token"), k.token(NS, "meshtune-node", { name: "meshtune-node-img", uid: uidOf }), {
      mode: 0o644,
    });
    const agent = launch(
      "DaemonSet",
      "meshtune-node",
      { MESHTUNE_CGROUP: kubepods, KUBECONFIG: inCluster("meshtune-node") },
      (a) =>
        a
          .replace("meshtune-controller.meshtune-system.svc.cluster.local", "127.0.0.1")
          .replace("/var/run/secrets/meshtune/token", join(tokDir, "token")),
    );
    runs.push(agent);
    await until("agent Ready", async () => (await status("http://127.0.0.1:15030/readyz")) === 200, agent.out);
    const loaded = JSON.parse(sh(tree.path("build/meshtune-bpf"), ["status"]).stdout);
    assert.ok(loaded.loaded, JSON.stringify(loaded));
    assert.match(agent.out(), /kernel TCP probes loaded/);
    const node = JSON.parse(k.kubectl(["get", "node", "node-a", "-o", "json"]));
    assert.is(node.metadata.labels["meshtune.io/datapath"], "true", JSON.stringify(node.metadata.labels));
    for (const sa of ["meshtune-controller", "meshtune-node"]) {
      const denied = k.audited(`system:serviceaccount:${NS}:${sa}`).filter((a) => a.code === 403);
      assert.equal(denied, [], `${sa}: ${JSON.stringify(denied)}`);
    }
    assert.not.match(agent.out(), /"status":40[13]|unauthori[sz]ed/i, agent.out());
  } finally {
    for (const r of runs.reverse()) await r.stop();
    sh(tree.path("build/meshtune-bpf"), ["unload"]);
    sh(tree.path("build/meshtune-tcpstats"), ["unload"]);
    await removeCgroups(root);
  }
});

test("fallback from the image, as its manifest runs it: Ready, its informers synced with its own token", async () => {
  const fb = launch("Deployment", "meshtune-fallback", { KUBECONFIG: inCluster("meshtune-fallback") });
  try {
    await until("fallback Ready", async () => (await status("http://127.0.0.1:9090/readyz")) === 200, fb.out);
    assert.is(await status("http://127.0.0.1:9090/healthz"), 200);
    const denied = k.audited(`system:serviceaccount:${NS}:meshtune-fallback`).filter((a) => a.code === 403);
    assert.equal(denied, [], JSON.stringify(denied));
  } finally {
    await fb.stop();
  }
});

test.run();

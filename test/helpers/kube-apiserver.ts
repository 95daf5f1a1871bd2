// A real Kubernetes API server for the tests: kube-apiserver and etcd built from the pinned
// k8s.io/kubernetes (test/kube/go.mod; `make kube`), started on loopback in a temp dir with RBAC
// on, a service-account issuer and signing key (TokenRequest, TokenReview and
// SubjectAccessReview are the real ones), Istio's CRDs from the pinned istio.io/api module, and a
// static admin token for the tests themselves. One server per test process (shared through
// globalThis by every test file uvu loads), stopped and removed on exit, even on failure.
// Flags as kubeadm sets them where it matters here: --allow-privileged (the node DaemonSet),
// --endpoint-reconciler-type=none (a loopback advertise address is refused otherwise).
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./cli.js";
import { freePort } from "./net.js";

export const KUBE_BIN = join(ROOT, "build", "kube");
const ADMIN_TOKEN = "meshtune-test-admin";

export interface RealApiServer {
  url: string;
  dir: string;
  /** kubeconfig with the static admin token (system:masters). */
  adminKubeconfig: string;
  /** A kubeconfig file that authenticates with `token`. */
  kubeconfigFor(token: string, name?: string): string;
  /** kubectl against this server as admin; stdout, throws with stderr on failure. */
  kubectl(args: string[], input?: string): string;
  /** The shipped manifests applied as a user would (`kubectl apply --server-side -k manifests/`),
   * after the istio-system namespace Istio's install would have made; idempotent, so every test
   * file sharing this server may call it. Returns kubectl's output. */
  installManifests(): string;
  /** A token for namespace/serviceAccount by TokenRequest, optionally bound to a pod (node claims). */
  token(namespace: string, serviceAccount: string, pod?: { name: string; uid: string }): string;
  startupMs: number;
  rssMiB: () => number;
  /** Requests the server audited for `username` (verb, API group, resource, status), oldest first. */
  audited(username: string): Audited[];
}

async function until(what: string, f: () => Promise<boolean>, ms: number, log: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await f().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready after ${ms} ms:\n${log().slice(-3000)}`);
}

const rss = (pid?: number) => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
};

/** Whether `make kube` has built the binaries (CI always does: make test depends on it). */
export function haveKube(): boolean {
  return ["kube-apiserver", "etcd", "kubectl"].every((b) => existsSync(join(KUBE_BIN, b)));
}

interface AuditEvent {
  verb: string;
  requestURI?: string;
  user?: { username?: string };
  objectRef?: { apiGroup?: string; resource?: string; namespace?: string };
  responseStatus?: { code?: number };
}
export interface Audited {
  verb: string;
  group: string;
  resource: string;
  namespace: string;
  uri: string;
  code: number;
}

/**
 * The server outlives the test file that started it, so it must not keep the test process alive:
 * the child and its stderr pipe are unref'd (uvu does not exit the process itself), and the exit
 * handler in realApiServer() kills both.
 */
function background(p: ChildProcess): void {
  p.unref();
  (p.stderr as unknown as { unref?: () => void } | null)?.unref?.();
}

type Shared = { server: Promise<RealApiServer>; procs: ChildProcess[]; dir: string };
const G = globalThis as unknown as { __meshtuneKube?: Shared };

/** The shared server, started on first use. */
export function realApiServer(): Promise<RealApiServer> {
  if (!G.__meshtuneKube) {
    const dir = mkdtempSync(join(tmpdir(), "meshtune-kube-"));
    const procs: ChildProcess[] = [];
    G.__meshtuneKube = { server: start(dir, procs), procs, dir };
    process.once("exit", () => {
      for (const p of procs) p.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    });
  }
  return G.__meshtuneKube.server;
}

async function start(dir: string, procs: ChildProcess[]): Promise<RealApiServer> {
  if (!haveKube()) throw new Error(`kube-apiserver, etcd and kubectl are not built in ${KUBE_BIN}: run make kube`);
  const t0 = Date.now();
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  let etcdLog = "",
    apiLog = "";
  const etcd = spawn(
    join(KUBE_BIN, "etcd"),
    [
      "--name=test",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=test=http://127.0.0.1:${peerPort}`,
      "--log-level=error",
      "--quota-backend-bytes=1073741824",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  procs.push(etcd);
  etcd.stderr!.on("data", (d) => (etcdLog = (etcdLog + d).slice(-20_000)));
  background(etcd);
  await until(
    "etcd",
    async () => (await fetch(`http://127.0.0.1:${etcdPort}/health`)).ok,
    20_000,
    () => etcdLog,
  );

  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  writeFileSync(join(dir, "sa.pub"), publicKey.export({ type: "spki", format: "pem" }));
  writeFileSync(join(dir, "sa.key"), privateKey.export({ type: "pkcs8", format: "pem" }));
  writeFileSync(join(dir, "tokens.csv"), `${ADMIN_TOKEN},meshtune-test-admin,1,"system:masters"\n`);
  // Every request's metadata, so tests can tell which permissions a component really used.
  writeFileSync(
    join(dir, "audit-policy.yaml"),
    "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n",
  );
  const api = spawn(
    join(KUBE_BIN, "kube-apiserver"),
    [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, "certs")}`,
      "--endpoint-reconciler-type=none",
      "--allow-privileged=true",
      "--authorization-mode=Node,RBAC",
      `--token-auth-file=${join(dir, "tokens.csv")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${join(dir, "sa.pub")}`,
      `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      "--api-audiences=https://kubernetes.default.svc.cluster.local",
      "--service-cluster-ip-range=10.96.0.0/16",
      "--enable-priority-and-fairness=false",
      `--audit-policy-file=${join(dir, "audit-policy.yaml")}`,
      `--audit-log-path=${join(dir, "audit.log")}`,
      "--audit-log-format=json",
      "--v=0",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  procs.push(api);
  api.stderr!.on("data", (d) => (apiLog = (apiLog + d).slice(-20_000)));
  background(api);
  const url = `https://127.0.0.1:${apiPort}`;
  const kubeconfigFor = (token: string, name = "admin") => {
    const f = join(dir, `kubeconfig-${name}-${Math.random().toString(36).slice(2, 8)}`);
    writeFileSync(
      f,
      [
        "apiVersion: v1",
        "kind: Config",
        `clusters: [{ name: test, cluster: { server: "${url}", insecure-skip-tls-verify: true } }]`,
        `users: [{ name: ${JSON.stringify(name)}, user: { token: ${JSON.stringify(token)} } }]`,
        `contexts: [{ name: test, context: { cluster: test, user: ${JSON.stringify(name)} } }]`,
        "current-context: test",
        "",
      ].join("\n"),
    );
    return f;
  };
  const adminKubeconfig = kubeconfigFor(ADMIN_TOKEN);
  const kubectl = (args: string[], input?: string) => {
    try {
      return execFileSync(join(KUBE_BIN, "kubectl"), ["--kubeconfig", adminKubeconfig, ...args], {
        input,
        stdio: ["pipe", "pipe", "pipe"],
        maxBuffer: 64 << 20,
      }).toString();
    } catch (e) {
      const x = e as { stderr?: Buffer; message: string };
      throw new Error(`kubectl ${args.join(" ")}: ${x.stderr?.toString().trim() || x.message}`, { cause: e });
    }
  };
  await until(
    "kube-apiserver",
    async () => {
      // Node's fetch cannot skip TLS verification per request: ask kubectl, which uses the kubeconfig.
      return kubectl(["get", "--raw", "/readyz"]).trim() === "ok";
    },
    60_000,
    () => apiLog,
  );
  // Istio's CRDs, from the istio.io/api module test/kube pins (make kube writes its path).
  const crds = join(
    readFileSync(join(KUBE_BIN, "istio-api-dir"), "utf8").trim(),
    "kubernetes",
    "customresourcedefinitions.gen.yaml",
  );
  kubectl(["apply", "--server-side", "-f", crds]);
  kubectl(["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
  const startupMs = Date.now() - t0;
  const token = (namespace: string, serviceAccount: string, pod?: { name: string; uid: string }) =>
    kubectl([
      "create",
      "token",
      serviceAccount,
      "-n",
      namespace,
      "--duration=1h",
      ...(pod ? ["--bound-object-kind=Pod", `--bound-object-name=${pod.name}`, `--bound-object-uid=${pod.uid}`] : []),
    ]).trim();
  return {
    url,
    dir,
    adminKubeconfig,
    kubeconfigFor,
    kubectl,
    installManifests: () => {
      kubectl(
        ["apply", "-f", "-"],
        JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "istio-system" } }),
      );
      return kubectl(["apply", "--server-side", "-k", join(ROOT, "manifests")]);
    },
    token,
    startupMs,
    rssMiB: () => rss(api.pid) + rss(etcd.pid),
    audited: (username) =>
      readFileSync(join(dir, "audit.log"), "utf8")
        .split("\n")
        .filter((l) => l.includes(username))
        .map((l) => JSON.parse(l) as AuditEvent)
        .filter((e) => e.user?.username === username && e.objectRef)
        .map((e) => ({
          verb: e.verb,
          group: e.objectRef!.apiGroup ?? "",
          resource: e.objectRef!.resource ?? "",
          namespace: e.objectRef!.namespace ?? "",
          uri: e.requestURI ?? "",
          code: e.responseStatus?.code ?? 0,
        })),
  };
}

// `recommend --kubeconfig` against a real kube-apiserver: the catalog and the mesh config read from
// the cluster with only manifests/optional/recommend-reader.yaml bound (a token of a
// ServiceAccount bound to it), giving the Sidecars the same catalog as a file gives; without the
// binding, a one-line error naming the role.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { realApiServer, type RealApiServer } from "./helpers/kube-apiserver.js";
import { meshtune, ROOT } from "./helpers/cli.js";

let k: RealApiServer;
type Obj = Record<string, any>;

test.before(async () => {
  try {
    k = await realApiServer();
    k.installManifests();
    k.kubectl(["apply", "--server-side", "-f", join(ROOT, "manifests/optional/recommend-reader.yaml")]);
    // The bundled sample's catalog, as a cluster would hold it (cluster IPs allocated by the server).
    const cat = JSON.parse(readFileSync(join(ROOT, "samples/bookinfo/catalog.json"), "utf8")) as { items: Obj[] };
    const namespaces = new Set(cat.items.map((o) => o.metadata.namespace));
    for (const ns of namespaces)
      k.kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } }));
    const items = cat.items
      .filter((o) => o.kind === "Service" || o.kind === "ServiceEntry")
      .map((o) =>
        o.kind === "Service" ? { ...o, spec: { ...o.spec, clusterIP: undefined, clusterIPs: undefined } } : o,
      );
    k.kubectl(["apply", "--server-side", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
    k.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "istio", namespace: "istio-system" },
        data: { mesh: "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n" },
      }),
    );
    k.kubectl(["create", "serviceaccount", "sre", "-n", "default"]);
    k.kubectl(["create", "serviceaccount", "nobody", "-n", "default"]);
    k.kubectl([
      "create",
      "clusterrolebinding",
      "sre-recommend",
      "--clusterrole=meshtune-recommend-reader",
      "--serviceaccount=default:sre",
    ]);
  } catch (e) {
    console.error("setup failed:", e);
    throw e;
  }
});

// The mesh config is the cluster's, shared by every test file of this run: put it back.
test.after(() => {
  k.kubectl(["delete", "configmap", "istio", "-n", "istio-system", "--ignore-not-found"]);
});

const hostsOf = (out: string) =>
  Object.fromEntries(
    (JSON.parse(out).items as Obj[]).map((s) => [
      s.metadata.name,
      { hosts: s.spec.egress[0].hosts, policy: s.spec.outboundTrafficPolicy },
    ]),
  );

test("the live catalog and mesh config with only the reader role: the same Sidecars as the catalog file, the cluster's REGISTRY_ONLY honoured", () => {
  const kc = k.kubeconfigFor(k.token("default", "sre"), "sre");
  const args = ["recommend", "--access-log", "samples/bookinfo/access.log", "--min-requests", "20", "-o", "json"];
  const live = meshtune([...args, "--kubeconfig", kc, "--fallback-host", "meshtune-fallback.meshtune-system"]);
  assert.is(live.code, 0, live.stderr);
  const file = meshtune([...args, "--catalog", "samples/bookinfo/catalog.json"]);
  const a = hostsOf(live.stdout),
    b = hostsOf(file.stdout);
  assert.equal(Object.keys(a).sort(), Object.keys(b).sort());
  for (const w of Object.keys(b)) assert.equal(a[w].hosts, b[w].hosts, w);
  for (const w of Object.keys(a))
    assert.is(a[w].policy, undefined, `${w}: REGISTRY_ONLY from the cluster: no egressProxy`);
  const denied = k.audited("system:serviceaccount:default:sre").filter((x) => x.code === 403);
  assert.equal(denied, [], JSON.stringify(denied));
});

test("without the reader role: one line naming the role to bind; --kubeconfig with --catalog is a usage error", () => {
  const kc = k.kubeconfigFor(k.token("default", "nobody"), "nobody");
  const r = meshtune(["recommend", "--access-log", "samples/bookinfo/access.log", "--kubeconfig", kc]);
  assert.is(r.code, 1);
  assert.match(
    r.stderr,
    /--kubeconfig: listing Namespace: forbidden \(bind manifests\/optional\/recommend-reader\.yaml\)/,
  );
  const both = meshtune([
    "recommend",
    "--access-log",
    "samples/bookinfo/access.log",
    "--kubeconfig",
    kc,
    "--catalog",
    "samples/bookinfo/catalog.json",
  ]);
  assert.is(both.code, 2);
});

test.run();

// The node agent enrolling ambient pods on this kernel (controller/agent/node-agent.ts with
// ambient-pod.ts), fed the Pod and Namespace objects the API server would send: enrolment by
// the namespace label and by the pod label, opt-out with `none`, a sidecar pod never enrolled as
// ambient, istio-cni's redirected pods left alone with the reason, live un-enrolment when a label
// goes, and re-keying when ztunnel restarts (its listeners are new sockets).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Registry } from "prom-client";
import type { V1Namespace, V1Pod } from "@kubernetes/client-node";
import { bpfUnavailable, sh, LOADER } from "./helpers/bpf.js";
import { MTNET, withAmbientNode, type AmbientNode } from "./helpers/ambient-node.js";
import { NodeAgent } from "../controller/agent/node-agent.js";
import { PodMaps } from "../controller/agent/datapath.js";
import { ambientPod } from "../controller/agent/ambient-pod.js";

const why = bpfUnavailable();
const quiet = () => {};

const ns = (name: string, labels: Record<string, string> = {}): V1Namespace => ({ metadata: { name, labels } });
function pod(
  n: AmbientNode,
  name: string,
  namespace: string,
  o: Partial<V1Pod["metadata"]> = {},
  sidecar = false,
): V1Pod {
  const p = n.pod(name);
  return {
    metadata: { name, namespace, uid: p.uid, labels: {}, annotations: {}, ...o },
    spec: { containers: [{ name: "app" }, ...(sidecar ? [{ name: "istio-proxy" }] : [])] },
    status: { phase: "Running", podIP: p.ip4, podIPs: [{ ip: p.ip4 }, { ip: p.ip6 }] },
  };
}
const ztunnelPod = (n: AmbientNode): V1Pod => ({
  metadata: { name: "ztunnel-x", namespace: "istio-system", uid: n.ztunnelUid, labels: { app: "ztunnel" } },
  spec: { containers: [{ name: "istio-proxy" }] },
  status: { phase: "Running" },
});
const listed = () =>
  new Map(
    (JSON.parse(sh(LOADER, ["pods"], { input: "list\n" }).stdout).pods as { id: number; flags: number }[]).map((p) => [
      p.id,
      p.flags,
    ]),
  );

test("ambient decisions follow Istio's labels and never take a sidecar or an istio-cni pod", () => {
  const base = (labels: Record<string, string>, annotations: Record<string, string> = {}, sidecar = false): V1Pod => ({
    metadata: { name: "w", namespace: "shop", uid: "u", labels, annotations },
    spec: { containers: [{ name: "w" }, ...(sidecar ? [{ name: "istio-proxy" }] : [])] },
    status: { phase: "Running", podIP: "10.1.2.3" },
  });
  const amb = ns("shop", { "istio.io/dataplane-mode": "ambient" });
  assert.equal(ambientPod(base({}), amb, true), { ambient: { ips: ["10.1.2.3"], dns: true } });
  assert.is(ambientPod(base({ "istio.io/dataplane-mode": "none" }), amb, true), null, "none opts the pod out");
  assert.equal(ambientPod(base({ "istio.io/dataplane-mode": "ambient" }), ns("shop"), false), {
    ambient: { ips: ["10.1.2.3"], dns: false },
  });
  assert.is(ambientPod(base({}), ns("shop"), true), null);
  assert.is(
    ambientPod(base({}, { "sidecar.istio.io/status": "{}" }, true), amb, true),
    null,
    "sidecar pods stay sidecar",
  );
  assert.match(
    (ambientPod(base({}, { "ambient.istio.io/redirection": "enabled" }), amb, true) as { skip: string }).skip,
    /istio-cni/,
  );
  // A tenant's pod labelled app=ztunnel is not ztunnel: the label does not opt it out.
  assert.equal(ambientPod(base({ app: "ztunnel" }), amb, true), { ambient: { ips: ["10.1.2.3"], dns: true } });
  const zt = {
    ...base({ app: "ztunnel" }),
    metadata: { name: "z", namespace: "istio-system", uid: "z", labels: { app: "ztunnel" } },
  };
  assert.equal(
    ambientPod(zt, { metadata: { name: "istio-system", labels: { "istio.io/dataplane-mode": "ambient" } } }, true),
    {
      skip: "ztunnel",
    },
  );
  assert.equal(ambientPod(base({}, { "ambient.istio.io/dns-capture": "false" }), amb, true), {
    ambient: { ips: ["10.1.2.3"], dns: false },
  });
});

if (why && process.env.CI !== "true") {
  console.log(`agent-ambient: skipped (${why}); under CI=true this fails`);
} else if (why) {
  test("BPF available on CI", () => assert.unreachable(`BPF unavailable: ${why}`));
} else {
  test("the agent enrols by namespace and pod label, un-enrols live when a label goes, leaves sidecar and istio-cni pods, re-keys after a ztunnel restart", () =>
    withAmbientNode(["a", "b", "s", "c"], async (n) => {
      n.load();
      for (const addr of ["0.0.0.0:8080", "[::]:8080"]) {
        await n.start({ nodeNs: true }, MTNET, ["serve", addr]);
        await n.start({ pod: "b" }, MTNET, ["serve", addr]);
      }
      for (const p of ["a", "s", "c"]) await n.start({ pod: p }, "sh", ["-c", "echo ready; exec sleep 600"]);
      process.env.MESHTUNE_BPF_LOADER = LOADER; // in-process: not next to the CLI entry
      const maps = new PodMaps();
      const agent = new NodeAgent(
        maps,
        { cgroupRoot: n.cgroup, procRoot: "/proc", proxyPort: 15001, ambient: true, ambientDns: true },
        new Registry(),
        quiet,
      );
      try {
        agent.namespaceChanged("add", ns("shop", { "istio.io/dataplane-mode": "ambient" }));
        agent.namespaceChanged("add", ns("other"));
        agent.podChanged("add", ztunnelPod(n));
        agent.podChanged("add", pod(n, "a", "shop"));
        agent.podChanged(
          "add",
          pod(n, "b", "other", {
            labels: { "istio.io/dataplane-mode": "ambient" },
            annotations: { "ambient.istio.io/dns-capture": "false" },
          }),
        );
        agent.podChanged("add", pod(n, "s", "shop", { annotations: { "sidecar.istio.io/status": "{}" } }, true));
        agent.podChanged("add", pod(n, "c", "shop", { annotations: { "ambient.istio.io/redirection": "enabled" } }));
        // ztunnel not running yet: a and b are enrolled closed, never open: a's connections are
        // refused rather than leaving unencrypted, and nothing reaches b's app past ztunnel.
        await agent.sync(true);
        assert.is(listed().size, 2, "enrolled closed");
        assert.not.equal(n.run("a", MTNET, ["pingpong", `${n.remote4}:8080`, "8", "1"]).code, 0, "a: refused");
        assert.not.equal(n.run("c", MTNET, ["pingpong", `${n.pod("b").ip4}:8080`, "8", "1"]).code, 0, "b: refused");
        await n.startZtunnel(["a", "b"]);
        await agent.sync();
        let l = listed();
        assert.is(l.size, 2, JSON.stringify([...l]));
        assert.equal(
          [...l.values()].sort((x, y) => x - y),
          [8, 24],
          "a ambient with DNS capture; b ambient, its DNS its own",
        );
        const out = () => n.ztunnel!.lines().filter((x) => x.startsWith("out 0 ")).length;
        const ins = () => n.ztunnel!.lines().filter((x) => x.startsWith("in 1 ")).length;
        const o0 = out();
        assert.is(n.run("a", MTNET, ["pingpong", `${n.remote4}:8080`, "8", "1"]).code, 0);
        await new Promise((r) => setTimeout(r, 100));
        assert.is(out(), o0 + 1, "a is captured");

        // ztunnel restarts: new listener sockets; the agent re-keys b's inbound to them.
        n.ztunnel!.proc.kill("SIGKILL");
        await new Promise((r) => n.ztunnel!.proc.once("exit", r));
        await n.startZtunnel(["a", "b"]);
        await agent.sync();
        const i0 = ins();
        assert.is(
          n.run("c", MTNET, ["pingpong", `${n.pod("b").ip4}:8080`, "8", "1"]).code,
          0,
          "c → b through the new ztunnel",
        );
        await new Promise((r) => setTimeout(r, 100));
        assert.is(ins(), i0 + 1);

        // The namespace label goes: a is un-enrolled live; b (pod label) stays.
        agent.namespaceChanged("update", ns("shop"));
        await agent.sync();
        l = listed();
        assert.equal([...l.values()], [8]);
        const o1 = out();
        assert.is(n.run("a", MTNET, ["pingpong", `${n.remote4}:8080`, "8", "1"]).code, 0);
        await new Promise((r) => setTimeout(r, 100));
        assert.is(out(), o1, "a goes direct now");
        // b says none: un-enrolled, its inbound goes straight to its app.
        agent.podChanged("update", pod(n, "b", "other", { labels: { "istio.io/dataplane-mode": "none" } }));
        await agent.sync();
        assert.is(listed().size, 0);
        const i1 = ins();
        assert.is(n.run("c", MTNET, ["pingpong", `${n.pod("b").ip4}:8080`, "8", "1"]).code, 0);
        await new Promise((r) => setTimeout(r, 100));
        assert.is(ins(), i1);
      } finally {
        maps.close();
      }
    }));
}

test.run();

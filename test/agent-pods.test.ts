// The agent's reading of Istio's per-pod capture settings (controller/agent/pod-capture.ts) and
// of the kubelet's cgroup names (pod-cgroups.ts), against what Istio and the kubelet write.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import {
  podCapture,
  setLine,
  POD_OUT_ALL,
  POD_IN_ALL,
  POD_IN_REDIRECT,
  PORT_IN_EXCLUDE,
  PORT_OUT_EXCLUDE,
  PORT_OUT_INCLUDE,
  PORT_IN_INCLUDE,
} from "../controller/agent/pod-capture.js";
import { findPodCgroup, podCgroupName, listening } from "../controller/agent/pod-cgroups.js";

const UID = "1f0e7c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
// What the 1.25 injector leaves on a pod (pkg/kube/inject/testdata/inject/hello.yaml.injected).
const injected = (annotations: Record<string, string> = {}, extra: Partial<V1Pod["spec"]> = {}): V1Pod => ({
  metadata: {
    name: "web-1",
    namespace: "shop",
    uid: UID,
    annotations: {
      "sidecar.istio.io/status": '{"initContainers":["istio-init"],"containers":["istio-proxy"]}',
      "traffic.sidecar.istio.io/excludeInboundPorts": "15020",
      "traffic.sidecar.istio.io/includeInboundPorts": "*",
      "traffic.sidecar.istio.io/includeOutboundIPRanges": "*",
      ...annotations,
    },
  },
  spec: { containers: [{ name: "web" }, { name: "istio-proxy" }], ...extra },
  status: { phase: "Running", podIP: "10.244.1.7", podIPs: [{ ip: "10.244.1.7" }, { ip: "fd00:10:244:1::7" }] },
});

test("an injected pod with Istio's defaults: capture everything, REDIRECT inbound, 15090/15021/15020 not inbound", () => {
  const d = podCapture(injected());
  assert.ok("capture" in d);
  if (!("capture" in d)) return;
  assert.is(d.capture.flags, POD_OUT_ALL | POD_IN_ALL | POD_IN_REDIRECT);
  assert.equal(d.capture.ips, ["10.244.1.7", "fd00:10:244:1::7"]);
  assert.equal(
    [...d.capture.ports],
    [
      [15090, PORT_IN_EXCLUDE],
      [15021, PORT_IN_EXCLUDE],
      [15020, PORT_IN_EXCLUDE | PORT_OUT_EXCLUDE],
      [53, PORT_OUT_EXCLUDE],
    ],
  );
  assert.is(
    setLine("/cg/pod", 7, d.capture),
    "set /cg/pod id=7 flags=7 uid=1337 gid=1337 ips=10.244.1.7,fd00:10:244:1::7 ports=53:1,15020:5,15021:4,15090:4",
  );
});

test("per-pod annotations: ranges, ports, TPROXY, lists", () => {
  const d = podCapture(
    injected({
      "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8, fd00::/8",
      "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.96.0.1/32",
      "traffic.sidecar.istio.io/excludeOutboundPorts": "5432,6379",
      "traffic.sidecar.istio.io/includeOutboundPorts": "443",
      "traffic.sidecar.istio.io/includeInboundPorts": "8080",
      "sidecar.istio.io/interceptionMode": "TPROXY",
    }),
  );
  if (!("capture" in d)) return assert.unreachable(JSON.stringify(d));
  assert.is(d.capture.flags, 0, "no wildcard range, listed inbound ports, TPROXY: no direct 15006");
  assert.equal(d.capture.include, ["10.0.0.0/8", "fd00::/8"]);
  assert.equal(d.capture.exclude, ["10.96.0.1/32"]);
  assert.is(d.capture.ports.get(5432), PORT_OUT_EXCLUDE);
  assert.is(d.capture.ports.get(443), PORT_OUT_INCLUDE);
  assert.is(d.capture.ports.get(8080), PORT_IN_INCLUDE);
  assert.is(d.capture.ports.get(15020), PORT_IN_EXCLUDE, "the annotation replaced istio-cni's default for outbound");
});

test("istio-cni's defaults when the injector wrote no annotations", () => {
  const pod = injected();
  pod.metadata!.annotations = { "sidecar.istio.io/status": "{}" };
  const d = podCapture(pod);
  if (!("capture" in d)) return assert.unreachable(JSON.stringify(d));
  assert.is(d.capture.flags, POD_OUT_ALL | POD_IN_ALL | POD_IN_REDIRECT);
  assert.is(d.capture.ports.get(15020), PORT_IN_EXCLUDE | PORT_OUT_EXCLUDE);
});

test("pods left alone, each with its reason", () => {
  const skip = (p: V1Pod) => ("skip" in podCapture(p) ? (podCapture(p) as { skip: string }).skip : "captured");
  const plain = injected();
  delete plain.metadata!.annotations!["sidecar.istio.io/status"];
  assert.is(skip(plain), "no-sidecar");
  assert.is(skip(injected({ "sidecar.istio.io/inject": "false" })), "injection-disabled");
  assert.is(skip(injected({}, { hostNetwork: true })), "host-network");
  assert.is(skip(injected({ "sidecar.istio.io/interceptionMode": "NONE" })), "interception-none");
  assert.is(skip(injected({ "meshtune.io/datapath": "false" })), "opted-out");
  assert.is(skip({ ...injected(), status: { phase: "Succeeded" } }), "finished");
  assert.match(
    skip(injected({ "traffic.sidecar.istio.io/excludeOutboundPorts": "80,http" })),
    /^bad-settings: annotations: excludeOutboundPorts: "http" is not a port$/,
  );
  assert.match(
    skip(injected({ "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.0.0.0/33" })),
    /^bad-settings: annotations: excludeOutboundIPRanges: "10.0.0.0\/33" is not a CIDR$/,
  );
  assert.match(skip(injected({ "traffic.sidecar.istio.io/excludeOutboundIPRanges": "*" })), /^bad-settings/);
  assert.match(
    skip(
      injected({
        "traffic.sidecar.istio.io/excludeOutboundPorts": Array.from({ length: 70 }, (_, i) => 2000 + i).join(","),
      }),
    ),
    /^too-many-rules/,
  );
  assert.is(skip(injected({ "sidecar.istio.io/interceptionMode": "TPROXY" })), "captured");
});

// The two shapes Istio's injector gives a pod (manifests/charts/istio-control/istio-discovery/files/
// injection-template.yaml): without istio-cni an istio-init container whose istio-iptables
// arguments are the only record of the mesh-wide values; with istio-cni an istio-validation
// container with the same arguments plus --run-validation --skip-rule-apply, and the values also
// written as annotations.
const iptablesArgs = (o: { i?: string; m?: string; u?: string; g?: string; extra?: string[] } = {}) => [
  "istio-iptables",
  ...["-p", "15001", "-z", "15006", "-u", o.u ?? "1337", "-m", o.m ?? "REDIRECT"],
  ...["-i", o.i ?? "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"],
  ...(o.g ? ["-g", o.g] : []),
  ...(o.extra ?? []),
  "--log_output_level=default:info",
];
function shaped(
  shape: "istio-init" | "istio-validation",
  args: string[],
  annotations: Record<string, string> = {},
  proxySecurity: Record<string, number> = { runAsUser: 1337, runAsGroup: 1337 },
): V1Pod {
  return {
    metadata: {
      name: "web-2",
      namespace: "shop",
      uid: UID,
      annotations: {
        "sidecar.istio.io/status": `{"initContainers":["${shape}"],"containers":["istio-proxy"]}`,
        ...annotations,
      },
    },
    spec: {
      initContainers: [
        {
          name: shape,
          image: "docker.io/istio/proxyv2:1.28.0",
          args: shape === "istio-validation" ? [...args, "--run-validation", "--skip-rule-apply"] : args,
        },
      ],
      containers: [{ name: "web" }, { name: "istio-proxy", securityContext: proxySecurity }],
    },
    status: { phase: "Running", podIP: "10.244.1.8" },
  };
}
const cap = (p: V1Pod) => {
  const d = podCapture(p);
  if (!("capture" in d)) throw new Error(JSON.stringify(d));
  return d.capture;
};

test("without istio-cni: the mesh's values come from istio-init's arguments (no annotations exist)", () => {
  // A mesh installed with values.global.proxy.includeIPRanges=10.0.0.0/8 and a TPROXY default.
  const c = cap(shaped("istio-init", iptablesArgs({ i: "10.0.0.0/8", m: "TPROXY" })));
  assert.equal(c.include, ["10.0.0.0/8"], "only the mesh's range is captured, not all egress");
  assert.is(c.flags & POD_OUT_ALL, 0);
  assert.is(c.flags & POD_IN_REDIRECT, 0, "TPROXY, not REDIRECT");
  assert.is(c.ports.get(15020), PORT_IN_EXCLUDE);
  assert.is(c.ports.get(53), PORT_OUT_EXCLUDE, "DNS is left to Istio's DNS capture");
  const all = cap(shaped("istio-init", iptablesArgs()));
  assert.is(all.flags, POD_OUT_ALL | POD_IN_ALL | POD_IN_REDIRECT);
});

test("the proxy's UID and GID: from -u/-g, else the istio-proxy container's securityContext; both exempted", () => {
  // OpenShift: an arbitrary UID from the namespace's range; the injector passes it as -u.
  const os = cap(
    shaped("istio-init", iptablesArgs({ u: "1000670000" }), {}, { runAsUser: 1000670000, runAsGroup: 1000670000 }),
  );
  assert.equal([os.uid, os.gid], [1000670000, 1000670000]);
  assert.match(setLine("/cg/p", 3, os), / uid=1000670000 gid=1000670000 /);
  const g = cap(shaped("istio-init", iptablesArgs({ g: "2000" })));
  assert.equal([g.uid, g.gid], [1337, 2000]);
  // istio-cni with no istio-validation container: the container's securityContext decides.
  const pod = injected();
  pod.spec!.containers![1].securityContext = { runAsUser: 1000680000, runAsGroup: 1000680001 };
  const c = cap(pod);
  assert.equal([c.uid, c.gid], [1000680000, 1000680001]);
});

test("with istio-cni: istio-validation's arguments and the annotations agree, or the pod is left alone as ambiguous", () => {
  const ann = {
    "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8",
    "traffic.sidecar.istio.io/includeInboundPorts": "*",
  };
  const c = cap(shaped("istio-validation", iptablesArgs({ i: "10.0.0.0/8" }), ann));
  assert.equal(c.include, ["10.0.0.0/8"]);
  const d = podCapture(
    shaped("istio-validation", iptablesArgs({ i: "10.0.0.0/8" }), {
      ...ann,
      "traffic.sidecar.istio.io/includeOutboundIPRanges": "*",
    }),
  );
  assert.ok(
    "skip" in d &&
      /^ambiguous: istio-validation says --istio-service-cidr "10.0.0.0\/8", annotation traffic.sidecar.istio.io\/includeOutboundIPRanges says "\*"/.test(
        d.skip,
      ),
    JSON.stringify(d),
  );
});

test("settings the connect-time hooks cannot honour leave the pod uncaptured, never half-captured", () => {
  const skip = (p: V1Pod) => ((d) => ("skip" in d ? d.skip : "captured"))(podCapture(p));
  assert.match(
    skip(shaped("istio-init", iptablesArgs({ extra: ["-c", "eth1"] }))),
    /^exclude-interfaces: istio-init args exclude eth1/,
  );
  assert.match(skip(shaped("istio-init", iptablesArgs({ extra: ["-k", "net1"] }))), /^virtual-interfaces/);
  const p = shaped("istio-init", iptablesArgs());
  p.spec!.initContainers![0].args = p.spec!.initContainers![0].args!.map((a) => (a === "15001" ? "15002" : a));
  assert.match(skip(p), /^proxy-ports: istio-init args capture to 15002\/15006, the node's datapath to 15001\/15006/);
  assert.match(
    skip(shaped("istio-init", iptablesArgs({ extra: ["--no-such-flag", "x"] }))),
    /^bad-settings: istio-init: unknown flag "--no-such-flag"/,
  );
  assert.match(
    skip(shaped("istio-init", iptablesArgs({ u: "root" }))),
    /^bad-settings: istio-init: -u: "root" is not a number/,
  );
  // DNS stays Istio's even when listed for capture.
  const dns = cap(shaped("istio-init", iptablesArgs({ extra: ["-q", "53,443"] })));
  assert.is(dns.ports.get(53), PORT_OUT_EXCLUDE);
  assert.is(dns.ports.get(443), PORT_OUT_INCLUDE);
});

test("review findings: -g defaults to -u, a root proxy is left alone, NONE from ProxyConfig's env is honoured", () => {
  // istio-iptables: without -g the GID is -u, not the container's group.
  const g = cap(shaped("istio-init", iptablesArgs({ u: "4000" }), {}, { runAsUser: 4000, runAsGroup: 5000 }));
  assert.equal([g.uid, g.gid], [4000, 4000]);
  const root = podCapture(shaped("istio-init", iptablesArgs({ u: "0" }), {}, { runAsUser: 0 }));
  assert.ok("skip" in root && /^proxy-root:/.test(root.skip), JSON.stringify(root));
  // interceptionMode NONE set in ProxyConfig: no init container, no annotation, only the env.
  const none = injected();
  none.spec!.containers![1].env = [{ name: "ISTIO_META_INTERCEPTION_MODE", value: "NONE" }];
  assert.equal(podCapture(none), { skip: "interception-none" });
});

test("kubelet cgroup names: cgroupfs and systemd drivers, any QoS depth", () => {
  assert.ok(podCgroupName(`pod${UID}`, UID));
  assert.ok(podCgroupName(`kubepods-burstable-pod${UID.replace(/-/g, "_")}.slice`, UID));
  assert.not.ok(podCgroupName(`pod${UID}x`, UID));
  const root = mkdtempSync(join(tmpdir(), "kubepods-"));
  mkdirSync(
    join(
      root,
      "kubepods-besteffort.slice",
      `kubepods-besteffort-pod${UID.replace(/-/g, "_")}.slice`,
      "cri-containerd-abc.scope",
    ),
    { recursive: true },
  );
  assert.is(
    findPodCgroup(root, UID),
    join(root, "kubepods-besteffort.slice", `kubepods-besteffort-pod${UID.replace(/-/g, "_")}.slice`),
  );
  assert.is(findPodCgroup(root, "00000000-0000-0000-0000-000000000000"), null);
});

test("listening: reads this process's own netns socket table (proc(5) format)", async () => {
  const { createServer } = await import("node:net");
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  assert.ok(listening("/proc", process.pid, port));
  s.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.not.ok(listening("/proc", process.pid, port));
});

test.run();

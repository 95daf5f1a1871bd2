// Which pods of this node the datapath captures, and how: Istio's own per-pod settings read
// from the pod, so the eBPF capture does what istio-init/istio-cni's iptables would.
//  - injected: the injector's `sidecar.istio.io/status` annotation plus an `istio-proxy`
//    container (or native-sidecar init container); not `sidecar.istio.io/inject: "false"`;
//    not hostNetwork (pkg/kube/inject/inject.go never injects those); interception mode
//    REDIRECT or TPROXY (NONE captures nothing);
//  - settings: the istio-init (or istio-validation) container's istio-iptables arguments, or the
//    traffic.sidecar.istio.io annotations, or istio-cni's defaults (capture-settings.ts); the
//    proxy's UID and GID are both exempted; port 53 is never redirected (Istio's DNS capture owns
//    it: istio-iptables SetupDNSRedir sends it to 15053); a pod whose settings need what the
//    connect-time hooks cannot do (excludeInterfaces, virtual interfaces, other proxy ports) is
//    left uncaptured with the reason.
// `meshtune.io/datapath: "false"` opts a pod out of the eBPF datapath only.
import type { V1Pod } from "@kubernetes/client-node";
import { isIP } from "node:net";
import { captureSettings } from "./capture-settings.js";

export const POD_OUT_ALL = 1,
  POD_IN_ALL = 2,
  POD_IN_REDIRECT = 4; // bpf/meshtune.h MT_POD_*
export const PORT_OUT_EXCLUDE = 1,
  PORT_OUT_INCLUDE = 2,
  PORT_IN_EXCLUDE = 4,
  PORT_IN_INCLUDE = 8; // MT_PORT_*
const LIMIT = 64; // per list, as the loader's `pods set` accepts

export interface Capture {
  flags: number;
  /** The pod's proxy UID and GID (never captured). */
  uid: number;
  gid: number;
  ips: string[];
  /** port -> MT_PORT_* bits */
  ports: Map<number, number>;
  exclude: string[];
  include: string[];
}
export type Decision = { capture: Capture } | { skip: string };

const DEFAULT_PORTS = { proxyPort: 15001, inboundPort: 15006 };
/** DNS: Istio's own capture sends it to the agent's DNS proxy (15053); meshtune never takes it. */
const DNS_PORT = 53;

function portList(v: string, what: string): number[] | "*" {
  const s = v.trim();
  if (s === "*") return "*";
  if (s === "") return [];
  const out: number[] = [];
  for (const p of s.split(",")) {
    const n = Number(p.trim());
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      throw new Error(`${what}: ${JSON.stringify(p.trim())} is not a port`);
    out.push(n);
  }
  return out;
}

function cidrList(v: string, what: string): string[] | "*" {
  const s = v.trim();
  if (s === "*") return "*";
  if (s === "") return [];
  return s.split(",").map((c) => {
    const t = c.trim(),
      [ip, bits, extra] = t.split("/");
    const fam = isIP(ip),
      max = fam === 4 ? 32 : 128;
    if (
      !fam ||
      extra !== undefined ||
      (bits !== undefined && !(Number.isInteger(Number(bits)) && Number(bits) >= 0 && Number(bits) <= max))
    )
      throw new Error(`${what}: ${JSON.stringify(t)} is not a CIDR`);
    return t;
  });
}

/** Capture settings for one pod, or why it is left alone. Bad annotations skip the pod with the
 * reason (the pod then works as unmeshed-by-eBPF; its own iptables, if any, still apply). */
export function podCapture(pod: V1Pod, node: { proxyPort: number; inboundPort: number } = DEFAULT_PORTS): Decision {
  const a = pod.metadata?.annotations ?? {},
    l = pod.metadata?.labels ?? {};
  if (pod.spec?.hostNetwork) return { skip: "host-network" };
  if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") return { skip: "finished" };
  if (a["sidecar.istio.io/inject"] === "false" || l["sidecar.istio.io/inject"] === "false")
    return { skip: "injection-disabled" };
  const proxy = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].some(
    (c) => c.name === "istio-proxy",
  );
  if (!a["sidecar.istio.io/status"] || !proxy) return { skip: "no-sidecar" };
  if (a["meshtune.io/datapath"] === "false") return { skip: "opted-out" };
  const s = captureSettings(pod);
  if ("skip" in s) return s;
  const from = s.source;
  if (s.mode === "NONE") return { skip: "interception-none" };
  if (s.mode !== "REDIRECT" && s.mode !== "TPROXY")
    return { skip: `bad-settings: ${from}: interception mode ${JSON.stringify(s.mode)}` };
  // The BPF program reads uid 0 as "not set" (the node's proxy UID applies): a proxy running as
  // root could not be exempted, and its own connections would loop back to it.
  if (s.uid === 0) return { skip: `proxy-root: ${from} run the proxy as uid 0; istio-iptables keeps this pod` };
  if (s.proxyPort !== node.proxyPort || s.inboundPort !== node.inboundPort)
    return {
      skip: `proxy-ports: ${from} capture to ${s.proxyPort}/${s.inboundPort}, the node's datapath to ${node.proxyPort}/${node.inboundPort}`,
    };
  // The connect-time hooks do not know which interface a connection will use.
  if (s.excludeInterfaces.trim())
    return { skip: `exclude-interfaces: ${from} exclude ${s.excludeInterfaces}; istio-iptables keeps this pod` };
  if (s.rerouteInterfaces.trim())
    return { skip: `virtual-interfaces: ${from} reroute ${s.rerouteInterfaces}; istio-iptables keeps this pod` };
  try {
    const inclRanges = cidrList(s.includeOutboundIPRanges, "includeOutboundIPRanges");
    const exclRanges = cidrList(s.excludeOutboundIPRanges, "excludeOutboundIPRanges");
    if (exclRanges === "*") throw new Error(`excludeOutboundIPRanges: "*" is not allowed`);
    const inclIn = portList(s.includeInboundPorts, "includeInboundPorts");
    const exclIn = portList(s.excludeInboundPorts, "excludeInboundPorts");
    const inclOut = portList(s.includeOutboundPorts, "includeOutboundPorts");
    const exclOut = portList(s.excludeOutboundPorts, "excludeOutboundPorts");
    if (exclIn === "*" || exclOut === "*" || inclOut === "*")
      throw new Error(`"*" is only allowed in includeInboundPorts`);
    const ports = new Map<number, number>();
    const mark = (ps: number[], bit: number) => {
      for (const p of ps) ports.set(p, (ports.get(p) ?? 0) | bit);
    };
    mark([15090, 15021, ...exclIn], PORT_IN_EXCLUDE);
    mark([DNS_PORT, ...exclOut], PORT_OUT_EXCLUDE);
    mark(
      inclOut.filter((p) => p !== DNS_PORT),
      PORT_OUT_INCLUDE,
    );
    if (inclIn !== "*") mark(inclIn, PORT_IN_INCLUDE);
    const ips = (pod.status?.podIPs?.map((p) => p.ip) ?? (pod.status?.podIP ? [pod.status.podIP] : [])).filter((ip) =>
      isIP(ip),
    );
    const cap: Capture = {
      flags:
        (inclRanges === "*" ? POD_OUT_ALL : 0) |
        (inclIn === "*" ? POD_IN_ALL : 0) |
        (s.mode === "REDIRECT" ? POD_IN_REDIRECT : 0),
      uid: s.uid,
      gid: s.gid,
      ips,
      ports,
      exclude: exclRanges,
      include: inclRanges === "*" ? [] : inclRanges,
    };
    if (ports.size > LIMIT || cap.exclude.length > LIMIT || cap.include.length > LIMIT)
      return { skip: `too-many-rules: more than ${LIMIT} ports or ranges` };
    return { capture: cap };
  } catch (e) {
    return { skip: `bad-settings: ${from}: ${(e as Error).message}` };
  }
}

/** The loader's `pods set` line for a captured pod. */
export function setLine(cgroupDir: string, id: number, c: Capture): string {
  const parts = [`set ${cgroupDir}`, `id=${id}`, `flags=${c.flags}`, `uid=${c.uid}`, `gid=${c.gid}`];
  if (c.ips.length) parts.push(`ips=${c.ips.join(",")}`);
  if (c.ports.size)
    parts.push(
      `ports=${[...c.ports]
        .sort((x, y) => x[0] - y[0])
        .map(([p, b]) => `${p}:${b}`)
        .join(",")}`,
    );
  if (c.exclude.length) parts.push(`exclude=${c.exclude.join(",")}`);
  if (c.include.length) parts.push(`include=${c.include.join(",")}`);
  return parts.join(" ");
}

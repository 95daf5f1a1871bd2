// A pod's capture settings as Istio holds them. Without istio-cni they exist only as the
// istio-init container's arguments; with istio-cni the injector writes them as
// traffic.sidecar.istio.io/* annotations and the istio-validation init container carries the same
// arguments (manifests/charts/istio-control/istio-discovery/files/injection-template.yaml). Flags
// as istio-iptables binds them (tools/istio-iptables/pkg/cmd/root.go, pkg/constants):
//   -p envoy-port  -z inbound-capture-port  -u proxy-uid  -g proxy-gid (default: -u)
//   -m istio-inbound-interception-mode  -i istio-service-cidr  -x istio-service-exclude-cidr
//   -b istio-inbound-ports  -d istio-local-exclude-ports  -q istio-outbound-ports
//   -o istio-local-outbound-ports-exclude  -c istio-exclude-interfaces  -k kube-virt-interfaces
// An injected pod with neither is an istio-cni pod whose injector wrote no annotations: istio-cni's
// own defaults apply (cni/pkg/plugin/sidecar_redirect.go). Arguments and annotations that disagree
// are ambiguous: the pod is left uncaptured with the reason, never half-captured.
import type { V1Pod, V1Container } from "@kubernetes/client-node";

export interface CaptureSettings {
  source: "istio-init args" | "istio-validation args" | "annotations" | "istio-cni defaults";
  mode: string;
  includeOutboundIPRanges: string;
  excludeOutboundIPRanges: string;
  includeInboundPorts: string;
  /** Inbound ports never captured (for arguments: -d, which already lists 15090,15021). */
  excludeInboundPorts: string;
  includeOutboundPorts: string;
  excludeOutboundPorts: string;
  proxyPort: number;
  inboundPort: number;
  excludeInterfaces: string;
  rerouteInterfaces: string;
  uid: number;
  gid: number;
}

const SHORT: Record<string, string> = {
  p: "envoy-port",
  z: "inbound-capture-port",
  e: "inbound-tunnel-port",
  u: "proxy-uid",
  g: "proxy-gid",
  m: "istio-inbound-interception-mode",
  i: "istio-service-cidr",
  x: "istio-service-exclude-cidr",
  b: "istio-inbound-ports",
  d: "istio-local-exclude-ports",
  q: "istio-outbound-ports",
  o: "istio-local-outbound-ports-exclude",
  c: "istio-exclude-interfaces",
  k: "kube-virt-interfaces",
  t: "inbound-tproxy-mark",
  r: "inbound-tproxy-route-table",
  n: "dry-run",
};
const VALUED = new Set(Object.values(SHORT));
/** Flags that take no value or change nothing meshtune does. */
const IGNORED =
  /^(run-validation|skip-rule-apply|force-apply|native-nftables|log_as_json|log_output_level|dry-run|redirect-dns|capture-all-dns|drop-invalid|dual-stack|probe-timeout|iptables-probe-port|reconcile|cleanup-only)$/;
const T = "traffic.sidecar.istio.io/";
const ANNOTATION_OF: Record<string, string> = {
  "istio-service-cidr": `${T}includeOutboundIPRanges`,
  "istio-service-exclude-cidr": `${T}excludeOutboundIPRanges`,
  "istio-inbound-ports": `${T}includeInboundPorts`,
  "istio-outbound-ports": `${T}includeOutboundPorts`,
  "istio-local-outbound-ports-exclude": `${T}excludeOutboundPorts`,
  "istio-exclude-interfaces": `${T}excludeInterfaces`,
  "istio-inbound-interception-mode": "sidecar.istio.io/interceptionMode",
};

/** istio-iptables' arguments as flag → value; throws on what it cannot read. */
export function parseIptablesArgs(args: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^(--?)([^=]+)(?:=(.*))?$/s.exec(a);
    if (!m) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const name = m[1] === "-" && m[2].length === 1 ? SHORT[m[2]] : m[1] === "--" ? m[2] : undefined;
    if (!name) throw new Error(`unknown flag ${JSON.stringify(a)}`);
    if (IGNORED.test(name)) continue; // boolean, or nothing meshtune does (logging, validation)
    if (!VALUED.has(name)) throw new Error(`unknown flag ${JSON.stringify(a)}`);
    const v = m[3] ?? args[++i];
    if (v === undefined) throw new Error(`${a} has no value`);
    out.set(name, v);
  }
  return out;
}

const isIptables = (x: string) => x === "istio-iptables" || x.endsWith("/istio-iptables");

function proxyContainer(pod: V1Pod): V1Container | undefined {
  return [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find((c) => c.name === "istio-proxy");
}

const num = (v: string | undefined, what: string): number | undefined => {
  if (v === undefined || v.trim() === "") return undefined;
  const n = Number(v.trim());
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`${what}: ${JSON.stringify(v)} is not a number`);
  return n;
};

/** The pod's settings, or why they cannot be read unambiguously. */
export function captureSettings(pod: V1Pod): CaptureSettings | { skip: string } {
  const a = pod.metadata?.annotations ?? {};
  const init = (pod.spec?.initContainers ?? []).find(
    (c) =>
      (c.name === "istio-init" || c.name === "istio-validation") &&
      [...(c.command ?? []), ...(c.args ?? [])].some(isIptables),
  );
  const proxy = proxyContainer(pod);
  const sc = proxy?.securityContext;
  // Interception mode set through ProxyConfig reaches the pod only as the proxy's environment.
  const envMode = proxy?.env?.find((e) => e.name === "ISTIO_META_INTERCEPTION_MODE")?.value;
  try {
    // The istio-proxy container's own securityContext (istio-cni reads no pod-level default).
    const ctrUid = num(sc?.runAsUser?.toString(), "istio-proxy runAsUser");
    const ctrGid = num(sc?.runAsGroup?.toString(), "istio-proxy runAsGroup");
    let f: Map<string, string> | null = null;
    if (init) {
      const argv = [...(init.command ?? []), ...(init.args ?? [])];
      f = parseIptablesArgs(argv.slice(argv.findIndex(isIptables) + 1));
      // The injector derives both from the same values: a difference means someone edited one.
      for (const [flag, ann] of Object.entries(ANNOTATION_OF)) {
        const fv = f.get(flag),
          av = a[ann];
        if (fv !== undefined && av !== undefined && norm(fv) !== norm(av))
          return {
            skip: `ambiguous: ${init.name} says --${flag} ${JSON.stringify(fv)}, annotation ${ann} says ${JSON.stringify(av)}`,
          };
      }
    }
    // Without istio-cni (istio-init) the arguments are what istio-iptables applied. With istio-cni
    // (istio-validation, or no init container) the plugin programs from the annotations and its own
    // defaults (cni/pkg/plugin/sidecar_redirect.go); the arguments only cross-check them.
    if (!f || init?.name === "istio-validation") {
      const annotated = Object.keys(a).some((k) => k.startsWith(T));
      const uid = ctrUid ?? 1337;
      return {
        source: annotated ? "annotations" : "istio-cni defaults",
        mode: a["sidecar.istio.io/interceptionMode"] ?? envMode ?? "REDIRECT",
        includeOutboundIPRanges: a[`${T}includeOutboundIPRanges`] ?? "*",
        excludeOutboundIPRanges: a[`${T}excludeOutboundIPRanges`] ?? "",
        includeInboundPorts: a[`${T}includeInboundPorts`] ?? "*",
        excludeInboundPorts: ["15090", "15021", a[`${T}excludeInboundPorts`] ?? "15020"].filter(Boolean).join(","),
        includeOutboundPorts: a[`${T}includeOutboundPorts`] ?? "",
        excludeOutboundPorts: a[`${T}excludeOutboundPorts`] ?? "15020",
        proxyPort: 15001,
        inboundPort: 15006,
        excludeInterfaces: a[`${T}excludeInterfaces`] ?? "",
        rerouteInterfaces: a[`${T}kubevirtInterfaces`] ?? a["istio.io/reroute-virtual-interfaces"] ?? "",
        uid,
        gid: ctrGid ?? uid,
      };
    }
    const uid = num(f.get("proxy-uid"), "-u") ?? ctrUid ?? 1337;
    return {
      source: "istio-init args",
      mode: f.get("istio-inbound-interception-mode") ?? envMode ?? "REDIRECT",
      includeOutboundIPRanges: f.get("istio-service-cidr") ?? "",
      excludeOutboundIPRanges: f.get("istio-service-exclude-cidr") ?? "",
      includeInboundPorts: f.get("istio-inbound-ports") ?? "",
      excludeInboundPorts: f.get("istio-local-exclude-ports") ?? "",
      includeOutboundPorts: f.get("istio-outbound-ports") ?? "",
      excludeOutboundPorts: f.get("istio-local-outbound-ports-exclude") ?? "",
      proxyPort: num(f.get("envoy-port"), "-p") ?? 15001,
      inboundPort: num(f.get("inbound-capture-port"), "-z") ?? 15006,
      excludeInterfaces: f.get("istio-exclude-interfaces") ?? "",
      rerouteInterfaces: f.get("kube-virt-interfaces") ?? "",
      uid,
      // istio-iptables: -g defaults to -u (tools/istio-iptables/pkg/config).
      gid: num(f.get("proxy-gid"), "-g") ?? uid,
    };
  } catch (e) {
    return { skip: `bad-settings: ${init?.name ?? "annotations"}: ${(e as Error).message}` };
  }
}

const norm = (v: string) =>
  v
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean)
    .sort()
    .join(",");

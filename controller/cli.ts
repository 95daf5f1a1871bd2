// meshtune command line (kubectl/istioctl style). Exit codes: 0 ok, 1 runtime error, 2 usage error.
import { Command, CommanderError, Option } from "commander";
// Commands load on demand: `recommend` should not pay for the Kubernetes client's start-up.
const recommend = async (o: Parameters<typeof import("./commands/recommend.js").recommend>[0]) =>
  (await import("./commands/recommend.js")).recommend(o);
const runController = async (o: import("./commands/controller.js").ControllerFlags) =>
  (await import("./commands/controller.js")).runController(o);
const runFallback = async (o: import("./commands/fallback.js").FallbackFlags) =>
  (await import("./commands/fallback.js")).runFallback(o);
const diagnose = async (o: import("./commands/diagnose.js").DiagnoseFlags) =>
  (await import("./commands/diagnose.js")).diagnoseCommand(o);
const runAgent = async (o: import("./commands/agent.js").AgentFlags) =>
  (await import("./commands/agent.js")).runAgent(o);
const features = async (o: import("./commands/features.js").FeaturesFlags) =>
  (await import("./commands/features.js")).featuresCommand(o);
const bpfCommand = async (sub: string, args: string[]) => (await import("./commands/bpf.js")).bpfCommand(sub, args);
const bpfLoad = async (o: import("./commands/bpf.js").DatapathFlags & { cgroup: string }) => {
  const b = await import("./commands/bpf.js");
  b.bpfCommand("load", b.loadArgs(o.cgroup, o));
};
import { UserError } from "./errors.js";

const collect = (v: string, prev: string[]) => [...prev, v];
/** What the datapath captures: shared by `agent` and `bpf load`. */
const datapathOptions = (c: Command) =>
  c
    .option("--proxy-port <n>", "the sidecar's outbound capture port", "15001")
    .option("--inbound-port <n>", "the sidecar's inbound capture port (same-node proxy→proxy)", "15006")
    .option("--proxy-uid <n>", "the sidecar's uid (its own connections are never captured)", "1337")
    .option("--exclude-port <n>", "node-wide: never capture this destination port; repeatable", collect, [])
    .option("--exclude-cidr <cidr>", "node-wide: never capture this destination range; repeatable", collect, [])
    .option("--skb-verdict <mode>", "no-op SK_SKB verdict (kernel wakeup workaround): auto|on|off", "auto");
const csv = (v: string) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** recommend's inputs and knobs: shared by `recommend` and `diff`. */
const recommendOptions = (c: Command) =>
  c
    .option(
      "--access-log <file>",
      "Istio access log (TEXT or JSON, optionally kubectl --prefix); '-' for stdin; repeatable",
      collect,
      [],
    )
    .option("--reports <dir>", "directory of saved filter reports (report v1 JSON)")
    .option("--namespace <ns>", "only generate for this namespace")
    .option("--workload <ns/name>", "attribute unprefixed lines to this workload, and only generate for it")
    .option("--default-namespace <ns>", "namespace for pods whose namespace cannot be inferred", "default")
    .addOption(new Option("-o, --output <format>", "output format").choices(["yaml", "json"]).default("yaml"))
    .option("--out-dir <dir>", "write one file per workload instead of stdout")
    .option(
      "--catalog <file>",
      "`kubectl get svc,serviceentries,virtualservices,pods,endpointslices -A -o json` (or YAML): exact pod identity, import namespaces, savings",
    )
    .option(
      "--mesh-config <file>",
      "Istio mesh config (istio ConfigMap or MeshConfig YAML): outbound policy, extension providers",
    )
    .option(
      "--kubeconfig <file>",
      "read the catalog and mesh config from this cluster instead of --catalog (read-only: manifests/optional/recommend-reader.yaml)",
    )
    .option("--context <name>", "kubeconfig context for --kubeconfig")
    .option(
      "--collector-host <fqdn>",
      "meshtune collector service every Sidecar keeps",
      "meshtune-controller.meshtune-system.svc.cluster.local",
    )
    .option("--fallback-host <fqdn>", "egressProxy for unlearned destinations (ALLOW_ANY meshes only); imported too")
    .option("--fallback-port <n>", "egressProxy port", "80")
    .option(
      "--unlearned <mode>",
      "first requests to unlearned destinations: egress-proxy (the fallback), passthrough, or auto (egress-proxy on Istio lines proven to honour it)",
      "auto",
    )
    .option("--report <file>", "write the report here instead of stderr")
    .option("--always-include <hosts>", "egress hosts every Sidecar keeps", csv, ["istio-system/*"])
    .option("--cluster-domain <domain>", "Kubernetes cluster domain", "cluster.local")
    .option("--strict", "exit 3 when any limit was hit (data dropped or evicted)")
    .option(
      "--rules",
      "also recommend VirtualService/DestinationRule timeouts, retries, outlier detection, pools along the call chain",
    )
    .option(
      "--resources",
      "also recommend sidecar CPU/memory annotations (Istio cost model, calibrated by --prometheus)",
    )
    .option("--discovery", "also recommend meshConfig.discoverySelectors and Service exportTo")
    .option(
      "--cryptomb",
      "also recommend CryptoMB for TLS-terminating workloads (Node objects with the agent's labels in --catalog)",
    )
    .option(
      "--html <file>",
      "also write the dashboard (graph, workloads, savings, recommendations, report) as one self-contained HTML file",
    )
    .option("--istio-version <v>", "target Istio MAJOR.MINOR (retryBudget needs 1.27+)", "1.25")
    .option("--min-requests <n>", "requests an edge needs before its tail sets a timeout or limit", "100")
    .option("--min-window <d>", "observed time a service needs before its tail sets a timeout or limit", "10m")
    .option(
      "--dataplane",
      "per namespace: cost as sidecars, ambient or sidecars on meshtune's datapath (report section)",
    )
    .option("--prometheus <url>", "calibrate sidecar resources and TLS handshake rates from this Prometheus")
    .option("--prometheus-window <d>", "usage window for --prometheus", "1d");

export function buildCli(): Command {
  const program = new Command("meshtune")
    .description("Service-mesh performance tuner for Istio")
    .version("0.1.0")
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s.split("\n")[0] + "\n") });

  recommendOptions(
    program
      .command("recommend")
      .description("learn dependencies from access logs / filter reports and print scoped Sidecar resources"),
  ).action(async (o) => recommend({ ...o, accessLog: o.accessLog }));
  recommendOptions(
    program
      .command("diff")
      .description(
        "what applying the recommendation would change against the cluster's (--kubeconfig) or the catalog's Sidecars; exit 1 when something would",
      ),
  ).action(async (o) => recommend({ ...o, accessLog: o.accessLog, diff: true }));

  program
    .command("diagnose")
    .description(
      "where each edge's time goes (client proxy, network, server proxy, app) and what is wrong, with kernel evidence",
    )
    .option("--reports <dir>", "saved filter reports (report v1/v2 JSON), offline")
    .option("--kernel <dir>", "saved node agent reports with kernel sections, offline")
    .option("--server <url>", "a controller to ask instead (its /api/diagnose)")
    .option("--token <token>", "bearer token for --server")
    .option("--workload <ns/name>", "only edges from or to this workload")
    .option("--edge <a->b>", "only this edge: NS/CLIENT->NS/SERVER (or ->HOST)")
    .option("--since <d>", "window: this long before the newest report (offline) or now", "15m")
    .addOption(new Option("-o, --output <fmt>", "table | json").default("table"))
    .action(async (o) => diagnose(o));

  program
    .command("controller")
    .description("in-cluster: collect filter reports, learn dependencies, apply scoped Sidecars (leader-elected)")
    .option("--port <n>", "collector, /healthz, /readyz and /metrics", "8080")
    .option("--kubeconfig <file>", "kubeconfig (default: in-cluster service account)")
    .option("--mode <mode>", "apply | recommend (recommend-only writes nothing)", "apply")
    .option("--dry-run", "server-side dry run (dryRun=All): validate, write nothing")
    .option("--default-enabled", "manage workloads without a meshtune.io/enabled label/annotation")
    .option("--min-window <d>", "observation window before a workload's first Sidecar", "1h")
    .option("--retention <d>", "never drop a dependency seen within this window", "7d")
    .option(
      "--fallback-host <host>",
      "egressProxy for destinations not learned yet",
      "meshtune-fallback.meshtune-system.svc.cluster.local",
    )
    .option("--fallback-port <n>", "fallback gateway port", "80")
    .option("--always-include <hosts>", "egress hosts every Sidecar keeps", csv, ["istio-system/*"])
    .option("--lease-namespace <ns>", "namespace of the leader-election Lease", "meshtune-system")
    .option("--lease-duration <d>", "leader lease duration (client-go LeaseDuration)", "15s")
    .option("--renew-deadline <d>", "leader gives up after failing to renew this long (client-go RenewDeadline)", "10s")
    .option("--retry-period <d>", "acquire/renew interval (client-go RetryPeriod)", "2s")
    .option(
      "--relist-interval <d>",
      "relist every watched resource this often (repairs a silently stalled watch)",
      "5m",
    )
    .option(
      "--advertise-url <url>",
      "this replica's collector URL for standbys to forward to (default http://$POD_IP:PORT)",
    )
    .option(
      "--collector-host <fqdn>",
      "this collector's Service; every Sidecar keeps it",
      "meshtune-controller.meshtune-system.svc.cluster.local",
    )
    .option(
      "--mesh-config-map <ns/name>",
      "Istio mesh config ConfigMap (outbound policy, extension providers)",
      "istio-system/istio",
    )
    .option("--prometheus <url>", "also learn from istio_requests_total / istio_tcp_connections_opened_total")
    .option("--prometheus-interval <d>", "Prometheus poll interval", "1m")
    .option("--cluster-domain <domain>", "Kubernetes cluster domain", "cluster.local")
    .option(
      "--token-port <n>",
      "second listener for callers off the mesh (Kubernetes bearer tokens); exclude it from sidecar capture; 0 disables",
      "8081",
    )
    .option("--self <ns/sa>", "this controller's service account (default: $POD_NAMESPACE/$SERVICE_ACCOUNT)")
    .option("--identity <id>", "leader-election identity (default: $POD_NAME)")
    .option("--report-rate <n>", "reports per second per caller identity (burst 2x)", "50")
    .option(
      "--flush-delay <d>",
      "learned-state write batching; a SIGKILL can lose what was learned within this window",
      "2s",
    )
    .option(
      "--fallback-identity <ns/sa>",
      "the fallback's service account: the only sender of fallback reports",
      "meshtune-system/meshtune-fallback",
    )
    .option(
      "--agent-identity <ns/sa>",
      "the node agent's service account: the only sender of agent (L4) reports",
      "meshtune-system/meshtune-node",
    )
    .option("--insecure-collector", "TESTS ONLY: accept reports and reads without identity")
    .option(
      "--apply-tuning <kinds>",
      "also apply these recommendations to opted-in workloads: rules,resources,cryptomb (default: none; needs manifests/tuning-apply.yaml RBAC)",
      csv,
      [],
    )
    .option("--tune-interval <d>", "how often the tuning is recomputed and applied", "10m")
    .option("--max-rollouts <n>", "pod-template patches (each rolls the workload) per tuning pass", "5")
    .option("--istio-version <x.y>", "Istio version of the mesh (fields of the rules: retryBudget from 1.27)", "1.25")
    .option(
      "--unlearned <mode>",
      "first requests to unlearned destinations: egress-proxy (the fallback), passthrough, or auto (egress-proxy on Istio lines proven to honour it)",
      "auto",
    )
    .option("--tune-min-requests <n>", "requests a service needs before rules are derived from its traffic", "100")
    .action((o) => runController(o));

  program
    .command("fallback")
    .description(
      "serve destinations scoped Sidecars do not list yet (their egressProxy): HTTP by Host, TLS by SNI; report each caller's edge at once",
    )
    .option("--port <n>", "listener for the callers' egressProxy traffic (HTTP and TLS on one port)", "8080")
    .option("--metrics-port <n>", "/healthz, /readyz and /metrics", "9090")
    .option("--kubeconfig <file>", "kubeconfig (default: in-cluster service account)")
    .option(
      "--catalog <file>",
      "a fixed catalog (kubectl get svc,serviceentries -A -o json) instead of watching the API server",
    )
    .option(
      "--collector <url>",
      "collector reports URL",
      "http://meshtune-controller.meshtune-system.svc.cluster.local:8080/v1/reports",
    )
    .option(
      "--token-file <file>",
      "bearer token for the collector (off the mesh; in-cluster the sidecar's mTLS identifies this pod)",
    )
    .option(
      "--self <ns/sa>",
      "this pod's service account; its namespace (meshtune's) is never a destination (default: $POD_NAMESPACE/$SERVICE_ACCOUNT)",
    )
    .option("--cluster-domain <domain>", "Kubernetes cluster domain", "cluster.local")
    .option("--trust-domain <domain>", "mesh trust domain, for AuthorizationPolicy principals", "cluster.local")
    .option("--root-namespace <ns>", "Istio root namespace (mesh-wide AuthorizationPolicies)", "istio-system")
    .option("--deny-namespace <ns>", "a namespace never forwarded to, beside meshtune's own; repeatable", collect, [])
    .option(
      "--resolve <host:port=addr:port>",
      "connect to addr:port for host:port instead of resolving it (like curl --resolve); repeatable",
      collect,
      [],
    )
    .option("--max-connections <n>", "concurrent connections; more are refused and counted", "4096")
    .option("--max-connections-per-source <n>", "concurrent connections from one caller address", "256")
    .option("--headers-timeout <d>", "each HTTP/1 request's headers must arrive within this", "10s")
    .option("--max-connection-age <d>", "close any connection after this long", "1h")
    .option("--idle-timeout <d>", "close a forwarded connection idle this long", "5m")
    .option("--connect-timeout <d>", "give up connecting upstream after this long", "5s")
    .option("--report-delay <d>", "coalesce learned edges this long before reporting", "200ms")
    .option(
      "--decision-ttl <d>",
      "reuse a caller identity's route decision for a host this long (a catalog or policy change ends it at once)",
      "5s",
    )
    .action((o) => runFallback(o));

  const agent = program
    .command("agent")
    .description(
      "node agent (DaemonSet): load the eBPF datapath once, capture exactly this node's meshed pods with their Istio settings, report connect-time L4 edges",
    )
    .option("--node <name>", "this node (default: $NODE_NAME)")
    .option("--kubeconfig <file>", "kubeconfig (default: in-cluster service account)")
    .option(
      "--cgroup <path>",
      "the kubepods cgroup to attach to (default: /sys/fs/cgroup/kubepods.slice or /sys/fs/cgroup/kubepods)",
    )
    .option("--proc <path>", "procfs of the host PID namespace (pod sockets are read from /proc/PID/net/tcp)", "/proc")
    .option("--collector <url>", "collector reports URL for L4 edges (none: no reports)")
    .option("--token-file <file>", "bearer token for the collector")
    .option("--report-interval <d>", "how often L4 edges are reported", "10s")
    .option(
      "--recheck-interval <d>",
      "how often programs of others attached since load are looked for (a sock_ops or sockmap user closes the splice gate)",
      "30s",
    )
    .option("--resync <d>", "how often pods waiting for their proxy are rechecked", "1s")
    .option("--metrics-port <n>", "/healthz, /readyz and /metrics", "15030")
    .option("--no-kernel-signals", "do not load the TCP probes (diagnose then has no kernel evidence from this node)")
    .option(
      "--namespace <ns>",
      "namespace of this node's status ConfigMap meshtune-node-<node> (default: $POD_NAMESPACE or meshtune-system)",
    )
    .option("--sys <path>", "sysfs of the host (PCI devices for QAT)", "/sys")
    .option("--ztunnel-namespace <ns>", "namespace of the ztunnel DaemonSet (Istio's system namespace)", "istio-system")
    .option(
      "--no-ambient-dns",
      "ambient pods' DNS stays theirs unless a pod asks (ambient.istio.io/dns-capture: \"true\"); default: to ztunnel's DNS proxy",
    )
    .action((o) => runAgent({ ...o, noKernelSignals: o.kernelSignals === false }));
  datapathOptions(agent);

  program
    .command("features")
    .description(
      "this node's features (BPF hooks by loading probe programs, kernel, CPU flags for CryptoMB, QAT) and the labels the agent publishes",
    )
    .option("--cgroup <path>", "also check this cgroup v2 directory for attaching")
    .option("--proc <path>", "procfs", "/proc")
    .option("--sys <path>", "sysfs", "/sys")
    .addOption(new Option("-o, --output <fmt>", "table | json").choices(["table", "json"]).default("table"))
    .action((o) => features(o));

  const bpf = program.command("bpf").description("node eBPF datapath: iptables-free redirect + sockmap splice");
  const load = bpf
    .command("load")
    .description(
      "load and attach to the kubepods cgroup v2 (refuses unsupported kernels and the root cgroup); pods are added by `meshtune agent`",
    )
    .requiredOption("--cgroup <path>", "cgroup v2 directory to attach to")
    .action((o) => bpfLoad(o));
  datapathOptions(load);
  bpf
    .command("unload")
    .description("detach and unpin; established connections keep working")
    .action(() => bpfCommand("unload", []));
  bpf
    .command("status")
    .description("programs, attach points and per-reason counters (JSON)")
    .action(() => bpfCommand("status", []));
  bpf
    .command("splice-gate [action]")
    .description(
      "show the splice gate, which the datapath closes when another program holds a socket's psock (EBUSY); `open` reopens it once that program is gone, `close` stops splicing new connections",
    )
    .action((action?: string) => bpfCommand("splice-gate", action ? [action] : []));
  bpf
    .command("probe")
    .description("check kernel support")
    .option("--cgroup <path>")
    .action((o) => bpfCommand("probe", o.cgroup ? ["--cgroup", o.cgroup] : []));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildCli().parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UserError) {
      process.stderr.write(`meshtune: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`meshtune: ${(e as Error)?.message ?? String(e)}\n`);
    return 1;
  }
}

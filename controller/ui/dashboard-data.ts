// The dashboard's data: one JSON document built from what meshtune knows — the learned graph,
// each workload's Sidecar (applied vs recommended), savings, tuning, latency attribution, node
// features and the input report. The same builder serves the CLI's HTML report and the
// controller's /api/dashboard, so both show the same thing.
import { toYaml } from "../k8s/yaml.js";
import { emptyStats, mergeStats, type Graph, type Stats } from "../model/graph.js";
import { parseCluster } from "../model/cluster-name.js";
import { quantileInterpUs } from "../model/histogram.js";
import { HostIndex } from "../istio/hosts.js";
import type { CatalogService } from "../sidecar/catalog.js";
import type { SidecarObj, UnregisteredNote, RejectedNote } from "../sidecar/generate.js";
import type { Savings } from "../sidecar/savings.js";
import type { Tuning } from "../tune/tune.js";
import type { DataplaneAdvice } from "../tune/dataplane-advisor.js";
import { traffic } from "../tune/traffic.js";
import type { Diagnosis, Verdict } from "../diagnose/verdict.js";
import type { InputSummary } from "../report.js";
import { serversByHost, type ServerJoin } from "./service-join.js";

export interface EdgeView {
  id: string;
  source: string;
  target: string;
  host: string;
  proto: string;
  requests: number;
  rps: number;
  errPct: number;
  p99Ms: number | null;
  verdict: Verdict | null;
  rule: string | null;
}
export interface GraphNodeView {
  id: string;
  label: string;
  namespace: string;
  /** service: a Kubernetes Service; external: a ServiceEntry host; unregistered: reached through
   * PassthroughCluster (outside the registry); blocked: refused (BlackHoleCluster / block_all). */
  kind: "workload" | "ambient" | "waypoint" | "gateway" | "service" | "external" | "unregistered" | "blocked";
}
export interface Recommendation {
  title: string;
  yaml: string;
  rationale: string[];
}
export interface WorkloadView {
  id: string;
  namespace: string;
  name: string;
  proxy: string;
  pods: number;
  action: string;
  reason: string | null;
  sidecar: { applied: string[] | null; recommended: string[] | null; yaml: string | null };
  learned: { host: string; requests: number; firstSeenMs: number; lastSeenMs: number }[];
  savings: Savings | null;
  recommendations: Recommendation[];
  rps: number;
}
export interface AttributionPoint {
  t: number;
  clientProxyMs: number;
  networkMs: number;
  serverProxyMs: number;
  appMs: number;
  totalMs: number;
}
export interface AttributionView {
  edge: string;
  client: string;
  server: string | null;
  verdict: Verdict;
  rule: string;
  points: AttributionPoint[];
}
export interface NodeView {
  name: string;
  features: Record<string, string>;
  datapath: string;
  counters: Record<string, number>;
}
export interface ReportView {
  inputs: InputSummary[];
  limits: string | null;
  unregistered: UnregisteredNote[];
  serviceEntries: string[];
  rejected: RejectedNote[];
  proxiesSkipped: { workload: string; kind: string; why: string }[];
  refused: { object: string; errors: string[] }[];
  /** What to check before applying (report.ts trustWarnings), and the CLI's report text. */
  warnings?: string[];
  text?: string | null;
  /** Per namespace: sidecars, ambient or meshtune's datapath (tune/dataplane-advisor.ts). */
  dataplane?: DataplaneAdvice[];
}
export interface DashboardData {
  v: 1;
  generatedAtMs: number;
  source: "report" | "controller";
  mode: string | null;
  namespaces: string[];
  graph: { nodes: GraphNodeView[]; edges: EdgeView[] };
  workloads: WorkloadView[];
  attribution: AttributionView[];
  nodes: NodeView[];
  report: ReportView;
}

export interface DashboardInputs {
  source: "report" | "controller";
  mode?: string;
  nowMs: number;
  graph: Graph;
  services: CatalogService[];
  domain: string;
  /** Per workload: what is in the cluster and what meshtune would apply (null when unknown). */
  sidecars: Map<
    string,
    {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a user's Sidecar, any shape
      applied: SidecarObj | Record<string, any> | null;
      recommended: SidecarObj | null;
      action: string;
      reason?: string;
    }
  >;
  savings: Savings[] | null;
  tuning: Tuning | null;
  /** Latency attribution per time window (diagnose), newest last; [] when no timings exist. */
  windows: { t: number; edges: Diagnosis[] }[];
  nodes: { name: string; labels: Record<string, string>; counters?: Record<string, number> }[];
  report: Omit<ReportView, "serviceEntries" | "refused" | "dataplane">;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const rate = (s: Stats, windowS: number) => round(s.count / windowS, 3);
const errPct = (s: Stats) => (s.count ? round((100 * s.err5xx) / s.count, 2) : 0);
const p99 = (s: Stats) => (s.count ? round(quantileInterpUs(s.buckets, 0.99) / 1000, 1) : null);

export function buildDashboard(i: DashboardInputs): DashboardData {
  const index = new HostIndex(i.services);
  const svcByHost = new Map(i.services.map((s) => [s.host, s]));
  const tr = traffic(i.graph, index, i.domain);
  const nodes = new Map<string, GraphNodeView>();
  const edges = new Map<string, EdgeView>();
  // The verdict of the newest window each edge has one in (client→host).
  const verdicts = new Map<string, Diagnosis>();
  for (const w of i.windows) for (const d of w.edges) verdicts.set(`${d.client}|${d.host}`, d);
  for (const n of i.graph.nodes.values())
    nodes.set(n.key, {
      id: n.key,
      label: n.name,
      namespace: n.namespace,
      kind:
        n.proxy.kind === "gateway" || n.proxy.kind === "ambient" || n.proxy.kind === "waypoint"
          ? n.proxy.kind
          : "workload",
    });
  const addEdge = (source: string, target: string, host: string, s: Stats, proto: string) => {
    const id = `${source}->${target}`;
    const v = verdicts.get(`${source}|${host}`) ?? null;
    const cur = edges.get(id);
    if (cur) {
      cur.requests += s.count;
      cur.rps = round(cur.rps + rate(s, tr.windowS), 3);
      return;
    }
    edges.set(id, {
      id,
      source,
      target,
      host,
      proto,
      requests: s.count,
      rps: rate(s, tr.windowS),
      errPct: errPct(s),
      p99Ms: p99(s),
      verdict: v?.verdict ?? null,
      rule: v?.rule ?? null,
    });
  };
  // Kiali's versioned-app graph: caller → the service it named → the workloads behind it.
  const join = serversByHost(i.graph, i.services, tr.servers, index, i.domain);
  const called = new Map<string, { port: number; proto: string; stats: Stats }>();
  for (const n of i.graph.nodes.values()) {
    for (const e of n.edges.values()) {
      if (e.dir !== "outbound") continue;
      const c = parseCluster(e.cluster);
      const host = c.host ?? e.authority;
      if (!host) continue;
      const svc = svcByHost.get(host);
      const inCluster = host.endsWith(`.svc.${i.domain}`);
      const ns = svc?.namespace ?? (inCluster ? host.split(".")[1] : "");
      if (!nodes.has(host))
        nodes.set(host, {
          id: host,
          label: host.replace(`.svc.${i.domain}`, ""),
          namespace: ns,
          kind: inCluster ? "service" : "external",
        });
      addEdge(n.key, host, host, e, e.proto);
      const sum = called.get(host) ?? { port: c.port, proto: e.proto, stats: emptyStats(e.firstSeenMs) };
      mergeStats(sum.stats, e);
      called.set(host, sum);
    }
    for (const u of n.unknown.values()) {
      const id = u.authority || u.sni || u.dst;
      if (!nodes.has(id))
        nodes.set(id, { id, label: id, namespace: "", kind: u.kind === "blackhole" ? "blocked" : "unregistered" });
      addEdge(n.key, id, id, u, u.proto ?? "");
    }
  }
  const serversOf = new Map<string, ServerJoin[]>();
  for (const [host, c] of called) {
    const servers = join(host, c.port);
    serversOf.set(host, servers);
    for (const s of servers) {
      // One server and nothing on its inbound side to attribute: all the callers' traffic went there.
      const st = s.stats ?? (servers.length === 1 ? c.stats : emptyStats(c.stats.firstSeenMs));
      addEdge(host, s.workload, host, st, c.proto);
    }
  }

  const sav = new Map((i.savings ?? []).map((s) => [s.workload, s]));
  const workloads: WorkloadView[] = [...i.graph.nodes.values()]
    .sort((a, b) => a.key.localeCompare(b.key))
    .map((n) => {
      const sc = i.sidecars.get(n.key);
      const hostsOf = (o: { spec?: { egress?: { hosts?: string[] }[] } } | null | undefined) =>
        o ? (o.spec?.egress?.[0]?.hosts ?? []) : null;
      const learned = [...n.edges.values()]
        .filter((e) => e.dir === "outbound")
        .map((e) => ({
          host: parseCluster(e.cluster).host ?? e.authority,
          requests: e.count,
          firstSeenMs: e.firstSeenMs,
          lastSeenMs: e.lastSeenMs,
        }))
        .concat(
          [...n.unknown.values()].map((u) => ({
            host: `${u.authority || u.sni || u.dst} (${u.kind})`,
            requests: u.count,
            firstSeenMs: u.firstSeenMs,
            lastSeenMs: u.lastSeenMs,
          })),
        )
        .sort((a, b) => b.requests - a.requests);
      return {
        id: n.key,
        namespace: n.namespace,
        name: n.name,
        proxy: n.proxy.kind,
        pods: n.pods.size,
        action: sc?.action ?? (n.proxy.kind === "sidecar" ? "none" : "skip"),
        reason: sc?.reason ?? (n.proxy.kind === "sidecar" ? null : `${n.proxy.kind}: ${n.proxy.why}`),
        sidecar: {
          applied: hostsOf(sc?.applied),
          recommended: hostsOf(sc?.recommended),
          yaml: sc?.recommended ? toYaml(sc.recommended) : null,
        },
        learned,
        savings: sav.get(n.key) ?? null,
        recommendations: recommendationsFor(n, i.tuning, serversOf),
        rps: round(tr.proxyRps.get(n.key) ?? 0, 3),
      };
    });

  const attribution = new Map<string, AttributionView>();
  for (const w of i.windows)
    for (const d of w.edges) {
      const a = attribution.get(d.edge) ?? {
        edge: d.edge,
        client: d.client,
        server: d.server,
        verdict: d.verdict,
        rule: d.rule,
        points: [],
      };
      const ms = (c?: { meanUs: number }) => round((c?.meanUs ?? 0) / 1000, 2);
      a.points.push({
        t: w.t,
        clientProxyMs: ms(d.components.clientProxy),
        networkMs: ms(d.components.network),
        serverProxyMs: ms(d.components.serverProxy),
        appMs: ms(d.components.app),
        totalMs: ms(d.components.total),
      });
      a.verdict = d.verdict;
      a.rule = d.rule;
      attribution.set(d.edge, a);
    }

  const seNs = new Map<string, string>();
  for (const u of i.report.unregistered)
    if (u.suggestion)
      seNs.set(`${u.suggestion.metadata.namespace}/${u.suggestion.spec.hosts[0]}`, toYaml(u.suggestion));
  const namespaces = [...new Set([...nodes.values()].map((n) => n.namespace).filter(Boolean))].sort();
  return {
    v: 1,
    generatedAtMs: i.nowMs,
    source: i.source,
    mode: i.mode ?? null,
    namespaces,
    graph: { nodes: [...nodes.values()], edges: [...edges.values()] },
    workloads,
    attribution: [...attribution.values()],
    nodes: i.nodes.map((n) => nodeView(n)).sort((a, b) => a.name.localeCompare(b.name)),
    report: {
      ...i.report,
      serviceEntries: [...seNs.values()],
      refused: i.tuning?.invalid ?? [],
      dataplane: i.tuning?.dataplane ?? [],
    },
  };
}

/** A node's meshtune.io/ labels (the agent's features), NFD CPU labels, and its datapath state. */
function nodeView(n: { name: string; labels: Record<string, string>; counters?: Record<string, number> }): NodeView {
  const features = Object.fromEntries(
    Object.entries(n.labels)
      .filter(([k]) => k.startsWith("meshtune.io/") || k.startsWith("feature.node.kubernetes.io/cpu-cpuid.AVX512"))
      .map(([k, v]) => [k.replace(/^meshtune\.io\//, ""), v]),
  );
  const dp = n.labels["meshtune.io/datapath"];
  return {
    name: n.name,
    features,
    datapath:
      dp === "true"
        ? "eBPF datapath available"
        : dp === "false"
          ? "eBPF datapath unsupported (iptables)"
          : "no meshtune agent report",
    counters: n.counters ?? {},
  };
}

function recommendationsFor(
  n: { key: string; edges: Map<string, { dir: string; cluster: string }> },
  t: Tuning | null,
  servers: Map<string, ServerJoin[]>,
): Recommendation[] {
  if (!t) return [];
  const key = n.key;
  const out: Recommendation[] = [];
  for (const r of t.resources)
    if (r.workload === key)
      out.push({ title: `sidecar resources (QoS ${r.qos})`, yaml: toYaml(r.patch), rationale: r.evidence });
  for (const c of t.cryptomb)
    if (c.workload === key)
      out.push({
        title: c.apply ? "CryptoMB" : "CryptoMB: not recommended",
        yaml: c.patch ? toYaml(c.patch) : "",
        rationale: [c.why],
      });
  // The rules the CLI printed for a host belong on the page of every workload behind it (it
  // serves under them) and of every caller (its proxy applies the route and the pool).
  const calls = new Set(
    [...n.edges.values()].filter((e) => e.dir === "outbound").map((e) => parseCluster(e.cluster).host),
  );
  for (const r of t.rules) {
    const serves = servers.get(r.host)?.some((s) => s.workload === key);
    if (!serves && !calls.has(r.host)) continue;
    const objs = [r.virtualService, r.destinationRule]
      .filter(Boolean)
      .map((o) => toYaml(o))
      .join("---\n");
    out.push({
      title: `mesh rules for ${r.host} (${serves ? "it serves" : "it calls"})`,
      yaml: objs,
      rationale: [...r.rationale.map((w) => `${w.field}: ${w.why}`), ...r.skipped.map((s) => `not set: ${s}`)],
    });
  }
  return out;
}

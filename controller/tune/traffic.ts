// Per-service traffic from the learned graph, the input every tuning rule reads: who calls which
// service host, how often, how slowly, how often it fails, with which method classes; and which
// workloads serve a host (their inbound edges' requested authority, resolved the way the
// caller's resolver would: istio/hosts.ts requestedFqdn).
import type { Graph, WorkloadNode } from "../model/graph.js";
import { parseCluster } from "../model/cluster-name.js";
import { BUCKETS } from "../model/histogram.js";
import { requestedFqdn, type HostIndex } from "../istio/hosts.js";

export interface HostTraffic {
  host: string;
  port: number;
  proto: string; // HTTP | TCP | … as the proxies reported it
  callers: Set<string>; // client workload keys
  callerNamespaces: Set<string>;
  /** Callers that are not sidecars, with their kind (gateway, ambient, waypoint): a mesh
   * VirtualService's routes are applied by sidecars (and waypoints), not by them. */
  otherCallers: Map<string, string>;
  count: number;
  err5xx: number;
  buckets: number[]; // client-side request time (meshtune-v1)
  sumUs: number;
  idempotent: number; // from report v2 method classes / access-log methods
  other: number;
}

export interface Traffic {
  hosts: Map<string, HostTraffic>;
  /** host → workload keys whose inbound edges were requested by that host. */
  servers: Map<string, Set<string>>;
  /** Observation window (s): first to last observation in the graph, at least 60 s. */
  windowS: number;
  /** First to last observation as seen (s), unclamped: the evidence window rules are judged on. */
  observedS: number;
  /** Requests per second through each workload's proxy (outbound + inbound). */
  proxyRps: Map<string, number>;
}

const HTTPISH = /^(HTTP|HTTP2|GRPC|HTTP\/1\.1|HTTP\/2)/i;
export const isHttp = (proto: string) => HTTPISH.test(proto);

export function traffic(g: Graph, index: HostIndex, domain: string): Traffic {
  const hosts = new Map<string, HostTraffic>();
  const servers = new Map<string, Set<string>>();
  const through = new Map<string, number>();
  let first = Infinity,
    last = -Infinity;
  for (const n of g.nodes.values()) {
    for (const e of n.edges.values()) {
      first = Math.min(first, e.firstSeenMs);
      last = Math.max(last, e.lastSeenMs);
      through.set(n.key, (through.get(n.key) ?? 0) + e.count);
      const c = parseCluster(e.cluster);
      if (e.dir === "inbound") {
        serverOf(n, e.authority, index, domain, servers);
        continue;
      }
      if (c.kind !== "outbound" || !c.host || c.egressGateway) continue;
      const k = `${c.host}`;
      let h = hosts.get(k);
      if (!h)
        hosts.set(
          k,
          (h = {
            host: c.host,
            port: c.port,
            proto: e.proto,
            callers: new Set(),
            callerNamespaces: new Set(),
            otherCallers: new Map(),
            count: 0,
            err5xx: 0,
            buckets: new Array(BUCKETS).fill(0),
            sumUs: 0,
            idempotent: 0,
            other: 0,
          }),
        );
      h.callers.add(n.key);
      h.callerNamespaces.add(n.namespace);
      if (n.proxy.kind !== "sidecar") h.otherCallers.set(n.key, n.proxy.kind);
      h.count += e.count;
      h.err5xx += e.err5xx;
      h.sumUs += e.sumUs;
      if (isHttp(e.proto)) h.proto = e.proto;
      for (let i = 0; i < BUCKETS; i++) h.buckets[i] += e.buckets[i];
      if (e.timing) {
        h.idempotent += e.timing.idempotent;
        h.other += e.timing.other;
      }
    }
  }
  const observedS = Number.isFinite(first) ? Math.max(0, (last - first) / 1000) : 0;
  const windowS = Math.max(60, observedS);
  const proxyRps = new Map([...through].map(([k, c]) => [k, c / windowS]));
  return { hosts, servers, windowS, observedS, proxyRps };
}

function serverOf(
  n: WorkloadNode,
  authority: string,
  index: HostIndex,
  domain: string,
  servers: Map<string, Set<string>>,
): void {
  if (!authority) return;
  const host = requestedFqdn(authority, n.namespace, domain, index);
  if (!host) return;
  const s = servers.get(host) ?? new Set();
  s.add(n.key);
  servers.set(host, s);
}

// Join the two ends of each call and the kernel's view of it: a client workload's outbound edge
// (its proxy's total and upstream time), the server workload's inbound edges (its proxy's total,
// and upstream time = the application's own time), the client pods' TCP signals towards the
// server pods' IPs and the server pods' signals from the client pods' IPs, and both sides'
// cgroup pressure.
//
// Server workloads of an edge: workloads whose pod IPs the client's sockets reached (kernel
// signals; the client's Envoy dials EDS endpoints, which Istio builds from the pods' addresses:
// pilot/pkg/xds/endpoints/endpoint_builder.go, 1.25), else those whose inbound requests carried the same
// service host (Istio sets the inbound request's Host as the client sent it).
import { parseCluster, stripPort, hostNamespace } from "../model/cluster-name.js";
import { workloadFromPod } from "../model/workload.js";
import { TS_SLOTS, type RemoteSignals } from "../agent/kernel-signals.js";
import type { Pressure } from "../agent/pod-pressure.js";
import {
  type EdgeTiming,
  type PodKernel,
  type SideTiming,
  addPressure,
  addRemote,
  addSide,
  emptySide,
} from "./store.js";

export interface JoinedEdge {
  client: string; // "ns/workload"
  server: string | null; // "ns/workload" when known
  host: string; // the destination host (cluster's host, or authority)
  port: number;
  clientSide: SideTiming;
  serverSide: SideTiming | null;
  clientNet: RemoteSignals | null; // client pods → server pods (outbound sockets)
  serverNet: RemoteSignals | null; // server pods ← client pods (accepted sockets)
  clientPressure: Pressure | null;
  clientWindowMs: number;
  serverPressure: Pressure | null;
  serverWindowMs: number;
}

const emptyRemote = (): RemoteSignals => ({
  dir: "out",
  ip: "",
  port: 0,
  rttSamples: 0,
  rttSumUs: 0,
  rttMinUs: 0,
  rttHist: new Array(TS_SLOTS).fill(0),
  retrans: 0,
  connects: 0,
  connectFail: 0,
  connectSumUs: 0,
  connectHist: new Array(TS_SLOTS).fill(0),
  accepts: 0,
});

function sumPressure(pods: PodKernel[]): { p: Pressure | null; windowMs: number } {
  if (!pods.length) return { p: null, windowMs: 0 };
  const p = { ...pods[0].pressure };
  for (const x of pods.slice(1)) addPressure(p, x.pressure);
  return { p, windowMs: Math.max(...pods.map((x) => x.windowMs)) };
}

/** The kernel's view of one client → server pair: each side's TCP signals towards the other's
 * pod IPs, and each side's cgroup pressure. */
function kernelSides(clientPods: PodKernel[], serverPods: PodKernel[]) {
  const serverIps = new Set(serverPods.flatMap((p) => p.ips)),
    clientIps = new Set(clientPods.flatMap((p) => p.ips));
  let clientNet: RemoteSignals | null = null,
    serverNet: RemoteSignals | null = null;
  for (const p of clientPods)
    for (const r of p.remotes.values())
      if (r.dir === "out" && serverIps.has(r.ip)) addRemote((clientNet ??= emptyRemote()), r);
  for (const p of serverPods)
    for (const r of p.remotes.values())
      if (r.dir === "in" && clientIps.has(r.ip)) addRemote((serverNet ??= { ...emptyRemote(), dir: "in" }), r);
  const cp = sumPressure(clientPods),
    sp = sumPressure(serverPods);
  return {
    clientNet,
    serverNet,
    clientPressure: cp.p,
    clientWindowMs: cp.windowMs,
    serverPressure: sp.p,
    serverWindowMs: sp.windowMs,
  };
}

const firstLabel = (h: string) => stripPort(h).toLowerCase().split(".")[0];

/** A pod's workload: from its filter reports, else (a pod with no proxy reports, such as an
 * ambient pod) guessed from its name by the pod-name rule. */
const workloadOf = (p: PodKernel): string => {
  if (p.workload) return p.workload;
  const [ns, pod] = p.key.split("/");
  return `${ns}/${workloadFromPod(pod)}`;
};

export function joinEdges(edges: EdgeTiming[], pods: PodKernel[]): JoinedEdge[] {
  const podsOf = new Map<string, PodKernel[]>();
  const workloadOfIp = new Map<string, string>();
  for (const p of pods) {
    const w = workloadOf(p);
    const l = podsOf.get(w);
    if (l) l.push(p);
    else podsOf.set(w, [p]);
    for (const ip of p.ips) workloadOfIp.set(ip, w);
  }
  const inbound = edges.filter((e) => e.dir === "inbound");
  const out: JoinedEdge[] = [];
  for (const e of edges) {
    if (e.dir !== "outbound") continue;
    const c = parseCluster(e.cluster);
    if (c.kind !== "outbound") continue;
    const host = c.host || stripPort(e.authority);
    const clientPods = podsOf.get(e.workload) ?? [];
    // Server by IP: where this client's outbound sockets on the cluster's port went.
    const byIp = new Map<string, number>();
    for (const p of clientPods)
      for (const r of p.remotes.values()) {
        const wl = r.dir === "out" ? workloadOfIp.get(r.ip) : undefined;
        if (wl && wl !== e.workload) byIp.set(wl, (byIp.get(wl) ?? 0) + r.rttSamples + r.connects);
      }
    // Server by Host: inbound edges whose requests named the same service.
    const ns = hostNamespace(host);
    const hostMatches = inbound.filter(
      (i) => i.authority && firstLabel(i.authority) === firstLabel(host) && (!ns || i.workload.startsWith(`${ns}/`)),
    );
    let server: string | null = null;
    if (byIp.size === 1) server = [...byIp.keys()][0];
    else if (hostMatches.length) server = hostMatches[0].workload;
    else if (byIp.size) server = [...byIp.entries()].sort((a, b) => b[1] - a[1])[0][0];
    let serverSide: SideTiming | null = null;
    if (server) {
      const mine = inbound.filter((i) => i.workload === server);
      const named = mine.filter((i) => i.authority && firstLabel(i.authority) === firstLabel(host));
      const use = named.length ? named : mine;
      if (use.length) {
        serverSide = emptySide();
        for (const i of use) addSide(serverSide, i.t);
      }
    }
    out.push({
      client: e.workload,
      server,
      host,
      port: c.port,
      clientSide: e.t,
      serverSide,
      ...kernelSides(clientPods, server ? (podsOf.get(server) ?? []) : []),
    });
  }
  // Clients with kernel signals but no proxy timings (ambient pods: ztunnel records no per-request
  // time; or pods whose reports are missing): one L4-only edge per server they reached.
  const timed = new Set(edges.filter((e) => e.dir === "outbound").map((e) => e.workload));
  for (const [client, clientPods] of podsOf) {
    if (timed.has(client)) continue;
    const byServer = new Map<string, { net: RemoteSignals; port: number }>();
    for (const p of clientPods)
      for (const r of p.remotes.values()) {
        if (r.dir !== "out") continue;
        const server = workloadOfIp.get(r.ip) ?? `${r.ip}:${r.port}`;
        if (server === client) continue;
        const cur = byServer.get(server) ?? { net: emptyRemote(), port: r.port };
        addRemote(cur.net, r);
        byServer.set(server, cur);
      }
    for (const [server, { net, port }] of byServer) {
      const known = podsOf.has(server);
      out.push({
        client,
        server: known ? server : null,
        host: server,
        port,
        clientSide: emptySide(),
        serverSide: null,
        ...kernelSides(clientPods, known ? podsOf.get(server)! : []),
        clientNet: net, // every outbound socket to that server, known as a workload or not
      });
    }
  }
  return out;
}

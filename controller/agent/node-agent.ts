// The node agent's loop: keep the datapath's pod maps equal to "the meshed pods of this node".
// A pod is written once its proxy listens (so a pod whose sidecar never came up keeps working),
// and stays until the pod is gone or stops qualifying: a proxy restart never opens a window in
// which the app's connections bypass it. Each pod is handled alone; one bad pod or one failed
// map write is counted and retried, never stops the loop.
import { existsSync, readFileSync, statSync } from "node:fs";
import type { V1Namespace, V1Pod } from "@kubernetes/client-node";
import type { Counter, Gauge, Registry } from "prom-client";
import { agentMetrics } from "../metrics.js";
import type { Logger } from "../log.js";
import { podCapture, setLine } from "./pod-capture.js";
import { ambientPod, isZtunnelPod, POD_AMBIENT, POD_AMBIENT_DNS } from "./ambient-pod.js";
import { syncProxyPriority, wantsPriority, type CpuRoots } from "./proxy-priority.js";
import { hostAddresses } from "./host-addresses.js";
import { findPodCgroup, listening, podPid, podPids } from "./pod-cgroups.js";
import type { PodMaps, Reply } from "./datapath.js";
import type { AgentReport } from "../collector/agent-report.js";
import type { MeshedPod } from "./kernel-signals.js";

/** How often an ambient pod's inbound listener is re-keyed even when nothing seems to change. */
const REKEY_MS = 10_000;

export interface AgentOptions {
  cgroupRoot: string;
  procRoot: string;
  proxyPort: number;
  /** The datapath's inbound redirect port (pods capturing elsewhere are left alone). */
  inboundPort?: number;
  /** Ambient pods: DNS to ztunnel's DNS proxy unless the pod says otherwise (default true). */
  ambientDns?: boolean;
  /** The loaded datapath has the ambient programs (the node passed the ambient probes). */
  ambient?: boolean;
  /** ztunnel's namespace (Istio's system namespace): only a pod there labelled app=ztunnel is it. */
  ztunnelNamespace?: string;
  /** Where container CPU weights live (proxy-priority.ts); absent: proxy priority is off. */
  cpuRoots?: CpuRoots;
}
interface Meshed {
  id: number;
  cgroupId: string;
  line: string;
  ns: string;
  name: string;
  /** Ambient pods: their IPs (inbound keys), the ztunnel process they were enrolled with, and
   * when its listeners were last keyed (re-keyed every REKEY_MS: ztunnel may re-create them). */
  ambient?: { ips: string; ztPid: number; keyedMs: number };
}

export class NodeAgent {
  private readonly pods = new Map<string, V1Pod>(); // uid -> pod
  private readonly namespaces = new Map<string, V1Namespace>(); // name -> namespace (ambient labels)
  private readonly prioritized = new Map<string, string>(); // uid -> the proxy weight applied (why)
  private readonly priorityWhy = new Map<string, string>(); // uid -> why priority could not apply
  private readonly meshed = new Map<string, Meshed>(); // uid -> what the maps hold
  private readonly waiting = new Map<string, string>(); // uid -> why not meshed yet
  private readonly dirs = new Map<string, string>(); // uid -> pod cgroup dir (the walk runs once per pod)
  private adopted = new Map<string, number>(); // cgroup id -> pod id found in the maps at start
  private nextId = 1;
  private reported = new Map<string, number>(); // "pod|dst" -> count already reported
  readonly states: Gauge<"state">;
  readonly skips: Counter<"reason">;
  readonly mapErrors: Counter;
  readonly deferred: Counter;
  /** Called with a released pod's id (its per-pod state elsewhere can go). */
  onRelease: (id: number) => void = () => {};

  constructor(
    private readonly maps: PodMaps,
    private readonly o: AgentOptions,
    registry: Registry,
    private readonly log: Logger,
  ) {
    ({
      pods: this.states,
      skips: this.skips,
      deferred: this.deferred,
      mapErrors: this.mapErrors,
    } = agentMetrics(registry));
  }

  /** Re-adopt what a previous agent left in the pinned maps: same ids, no gap in capture. */
  async adopt(): Promise<void> {
    const r = await this.maps.send("list");
    if (!r.ok) throw new Error(`pods list: ${r.error}`);
    for (const p of r.pods as { id: number; cgroupId: number }[]) {
      this.adopted.set(String(p.cgroupId), p.id);
      this.nextId = Math.max(this.nextId, p.id + 1);
    }
  }

  podChanged(type: "add" | "update" | "delete", p: V1Pod): void {
    const uid = p.metadata?.uid;
    if (!uid) return;
    if (type === "delete") this.pods.delete(uid);
    else this.pods.set(uid, p);
  }

  namespaceChanged(type: "add" | "update" | "delete", ns: V1Namespace): void {
    const name = ns.metadata?.name;
    if (!name) return;
    if (type === "delete") this.namespaces.delete(name);
    else this.namespaces.set(name, ns);
  }

  private nodeIps = "";

  /** One pass over every pod of the node (cheap: a directory walk and a /proc read per new pod). */
  async sync(initial = false): Promise<void> {
    if (this.o.ambient) {
      // Host-originated traffic (kubelet probes) is not captured inbound: the node's addresses.
      const ips = hostAddresses(this.o.procRoot).join(",");
      if (ips && ips !== this.nodeIps) {
        const r = await this.maps.send(`nodeips ${ips}`);
        if (r.ok) this.nodeIps = ips;
        else this.mapErrors.inc();
      }
    }
    for (const [uid, pod] of this.pods) {
      try {
        await this.syncPod(uid, pod);
        this.syncPriority(uid, pod);
      } catch (e) {
        this.mapErrors.inc();
        this.log("warn", "pod sync failed", {
          pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`,
          error: (e as Error).message,
        });
      }
    }
    for (const [uid, m] of this.meshed) if (!this.pods.has(uid)) await this.remove(uid, m, "deleted");
    for (const uid of [
      ...this.dirs.keys(),
      ...this.waiting.keys(),
      ...this.prioritized.keys(),
      ...this.priorityWhy.keys(),
    ])
      if (!this.pods.has(uid)) {
        this.dirs.delete(uid);
        this.waiting.delete(uid);
        this.prioritized.delete(uid);
        this.priorityWhy.delete(uid);
      }
    if (initial) {
      // Pods a previous agent meshed that no longer exist on this node.
      const live = new Set([...this.meshed.values()].map((m) => m.id));
      for (const id of this.adopted.values())
        if (!live.has(id)) {
          await this.maps.send(`del ${id}`);
          await this.maps.send(`unambient ${id}`); // its sk_lookup link, if it was ambient
        }
      this.adopted.clear();
    }
    this.states.set({ state: "meshed" }, this.meshed.size);
    this.states.set({ state: "waiting" }, [...this.waiting.values()].filter((w) => !w.startsWith("skip:")).length);
    this.states.set({ state: "skipped" }, [...this.waiting.values()].filter((w) => w.startsWith("skip:")).length);
  }

  /** Opted-in pods' proxies get their CPU weight; opted-out ones that had it get the kubelet's back. */
  private syncPriority(uid: string, pod: V1Pod): void {
    if (!this.o.cpuRoots) return;
    const want =
      wantsPriority(pod, this.namespaces.get(pod.metadata?.namespace ?? "")) &&
      (pod.spec?.containers ?? []).some((c) => c.name === "istio-proxy");
    if (!want && !this.prioritized.has(uid)) return;
    const dir = this.podDir(uid);
    if (!dir) return;
    const r = syncProxyPriority(this.o.cpuRoots, dir, pod, want);
    const before = this.prioritized.get(uid);
    if (r.applied) this.prioritized.set(uid, r.why);
    else if (want) {
      // Logged once per reason; the pod's capture state (and its gauge) is not this.
      if (this.priorityWhy.get(uid) !== r.why)
        this.log("info", "proxy priority not applied", {
          pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`,
          why: r.why,
        });
      this.priorityWhy.set(uid, r.why);
      return;
    } else this.prioritized.delete(uid);
    if (before !== (r.applied ? r.why : undefined))
      this.log("info", r.applied ? "proxy priority applied" : "proxy priority removed", {
        pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`,
        why: r.why,
      });
  }

  private note(uid: string, why: string, pod: V1Pod): void {
    if (this.waiting.get(uid) === why) return;
    this.waiting.set(uid, why);
    if (why.startsWith("skip:")) this.skips.inc({ reason: why.slice(5).split(":")[0] });
    this.log("info", "pod not captured", { pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, why });
  }

  private podDir(uid: string): string | null {
    let dir = this.dirs.get(uid);
    if (!dir || !existsSync(dir)) dir = findPodCgroup(this.o.cgroupRoot, uid) ?? undefined;
    if (dir) this.dirs.set(uid, dir);
    return dir ?? null;
  }

  /** ztunnel's process on this node (in its pod's cgroup: the one named ztunnel, never the
   * pod's pause process, which holds no sockets), or null while it is not running. */
  private ztunnelPid(): number | null {
    for (const [uid, p] of this.pods)
      if (isZtunnelPod(p, this.o.ztunnelNamespace ?? "istio-system") && p.status?.phase === "Running") {
        const dir = this.podDir(uid);
        if (!dir) continue;
        let fallback: number | null = null;
        for (const pid of podPids(dir)) {
          let comm: string;
          try {
            comm = readFileSync(`${this.o.procRoot}/${pid}/comm`, "utf8").trim();
          } catch {
            continue;
          }
          if (comm === "ztunnel") return pid;
          if (comm !== "pause") fallback ??= pid;
        }
        if (fallback) return fallback;
      }
    return null;
  }

  private async syncPod(uid: string, pod: V1Pod): Promise<void> {
    const cur = this.meshed.get(uid);
    const amb = ambientPod(
      pod,
      this.namespaces.get(pod.metadata?.namespace ?? ""),
      this.o.ambientDns ?? true,
      this.o.ztunnelNamespace ?? "istio-system",
    );
    if (amb) return this.syncAmbient(uid, pod, amb, cur);
    const d = podCapture(pod, { proxyPort: this.o.proxyPort, inboundPort: this.o.inboundPort ?? 15006 });
    if ("skip" in d) {
      if (cur) await this.remove(uid, cur, d.skip);
      return this.note(uid, `skip:${d.skip}`, pod);
    }
    if (cur?.ambient) await this.remove(uid, cur, "no longer ambient");
    const dir = this.podDir(uid);
    if (!dir) return this.note(uid, "waiting: pod cgroup not found", pod);
    const cgroupId = String(statSync(dir, { bigint: true }).ino);
    // A pod stays captured once captured, across agent restarts too (adopted from the maps).
    if (!cur && !this.adopted.has(cgroupId)) {
      const pid = podPid(dir);
      if (!pid || !listening(this.o.procRoot, pid, this.o.proxyPort))
        return this.note(uid, `waiting: proxy not listening on ${this.o.proxyPort}`, pod);
    }
    const id = (cur && !cur.ambient ? cur.id : undefined) ?? this.adopted.get(cgroupId) ?? this.nextId++;
    const line = setLine(dir, id, d.capture);
    if (cur && cur.line === line && cur.cgroupId === cgroupId) return;
    const r: Reply = await this.maps.send(line);
    if (!r.ok) {
      this.mapErrors.inc();
      return this.note(uid, `waiting: map write failed: ${r.error}`, pod);
    }
    this.meshed.set(uid, { id, cgroupId, line, ns: pod.metadata!.namespace!, name: pod.metadata!.name! });
    this.waiting.delete(uid);
    if (!cur)
      this.log("info", "pod captured", { pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, id, cgroup: dir });
  }

  /** An ambient pod: inbound steering first (it checks that ztunnel is ready in the pod), then
   * outbound capture; re-keyed when ztunnel restarts (its listeners are new sockets). */
  private async syncAmbient(
    uid: string,
    pod: V1Pod,
    amb: NonNullable<ReturnType<typeof ambientPod>>,
    cur: Meshed | undefined,
  ): Promise<void> {
    if ("skip" in amb) {
      if (cur) await this.remove(uid, cur, amb.skip);
      return this.note(uid, `skip:${amb.skip}`, pod);
    }
    if (!this.o.ambient)
      return this.note(
        uid,
        "skip:ambient-unsupported: this node's kernel lacks a hook ambient capture needs (meshtune features); istio-cni keeps ambient pods",
        pod,
      );
    if (cur && !cur.ambient) await this.remove(uid, cur, "now ambient");
    const dir = this.podDir(uid);
    if (!dir) return this.note(uid, "waiting: pod cgroup not found", pod);
    const pid = podPid(dir);
    if (!pid) return this.note(uid, "waiting: pod has no process yet", pod);
    const zt = this.ztunnelPid();
    const cgroupId = String(statSync(dir, { bigint: true }).ino);
    const now = this.meshed.get(uid);
    const id = now?.id ?? this.adopted.get(cgroupId) ?? this.nextId++;
    const ips = amb.ambient.ips.join(",");
    const line = `set ${dir} id=${id} flags=${POD_AMBIENT | (amb.ambient.dns ? POD_AMBIENT_DNS : 0)} ips=${ips}`;
    const fresh = now?.ambient && Date.now() - now.ambient.keyedMs < REKEY_MS;
    if (now && now.line === line && now.ambient?.ztPid === (zt ?? 0) && now.cgroupId === cgroupId && fresh) return;
    const netns = `${this.o.procRoot}/${pid}/ns/net`;
    let inbound = zt
      ? await this.maps.send(`ambient ${id} ${netns} ${zt} ips=${ips}${amb.ambient.dns ? " dns=1" : ""}`)
      : ({ ok: false, error: "ztunnel not running on this node" } as Reply);
    const ready = inbound.ok;
    if (!inbound.ok) {
      // Enrolled closed, as istio-cni keeps a pod from starting until ztunnel is ready: the
      // sk_lookup link without a listener refuses inbound, and outbound finds no listener,
      // rather than letting the pod's traffic skip ztunnel.
      const why = inbound.error;
      inbound = await this.maps.send(`ambient ${id} ${netns} 0 ips=${ips} closed=1`);
      if (!inbound.ok) return this.note(uid, `waiting: ${inbound.error}`, pod);
      this.note(uid, `waiting: ${why}; enrolled closed (connections refused until ztunnel is ready)`, pod);
    }
    const r = await this.maps.send(line);
    if (!r.ok) {
      this.mapErrors.inc();
      // Only a pod enrolled just now loses its inbound steering again; an enrolled one keeps it.
      if (!now?.ambient) await this.maps.send(`unambient ${id} ips=${ips}`);
      return this.note(uid, `waiting: map write failed: ${r.error}`, pod);
    }
    this.meshed.set(uid, {
      id,
      cgroupId,
      line,
      ns: pod.metadata!.namespace!,
      name: pod.metadata!.name!,
      ambient: { ips, ztPid: ready ? zt! : 0, keyedMs: Date.now() },
    });
    if (ready) this.waiting.delete(uid);
    if (!now)
      this.log("info", "pod enrolled (ambient)", {
        pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`,
        id,
        ztunnel: zt,
      });
  }

  private async remove(uid: string, m: Meshed, why: string): Promise<void> {
    // Outbound capture first, then inbound steering: established connections keep their path.
    const r = await this.maps.send(`del ${m.id}`);
    if (!r.ok) {
      this.mapErrors.inc();
      return;
    }
    if (m.ambient) {
      const u = await this.maps.send(`unambient ${m.id} ips=${m.ambient.ips}`);
      if (!u.ok) this.mapErrors.inc();
    }
    this.meshed.delete(uid);
    this.waiting.delete(uid);
    for (const k of this.reported.keys()) if (k.startsWith(`${m.id}|`)) this.reported.delete(k);
    this.onRelease(m.id);
    this.log("info", "pod released", { pod: `${m.ns}/${m.name}`, why });
  }

  /** The pods the datapath holds now, with what kernel signals need (ids, IPs, cgroup dirs). */
  meshedPods(): MeshedPod[] {
    const out: MeshedPod[] = [];
    for (const [uid, m] of this.meshed) {
      const pod = this.pods.get(uid),
        dir = this.dirs.get(uid);
      if (!pod || !dir) continue;
      const ips = (pod.status?.podIPs ?? [])
        .map((x) => x.ip)
        .filter(Boolean)
        .slice(0, 8);
      if (!ips.length && pod.status?.podIP) ips.push(pod.status.podIP);
      out.push({ id: m.id, namespace: m.ns, name: m.name, ips, cgroupDir: dir });
    }
    return out;
  }

  /** Edges counted since the last accepted report (after a restart: everything in the map, so a
   * dependency is never lost; its count may be reported twice), at most `maxEdges` of them: the
   * rest stay pending for the next report, counted, never dropped. commit() after a 2xx. */
  async pendingReport(node: string, maxEdges = 2000): Promise<{ report: AgentReport; commit: () => void } | null> {
    const r = await this.maps.send("edges");
    if (!r.ok) throw new Error(`edges: ${r.error}`);
    const byId = new Map([...this.meshed.values()].map((m) => [m.id, m]));
    const pods = new Map<number, AgentReport["pods"][number]>();
    const sent = new Map<string, number>();
    let deferred = 0;
    for (const e of r.edges as { pod: number; dst: string; count: number }[]) {
      const m = byId.get(e.pod);
      if (!m) continue;
      const k = `${e.pod}|${e.dst}`,
        delta = e.count - (this.reported.get(k) ?? 0);
      if (delta <= 0) continue;
      let p = pods.get(e.pod);
      if (sent.size >= maxEdges || (p && p.edges.length >= 1000) || (!p && pods.size >= 1000)) {
        deferred++;
        continue;
      }
      if (!p) pods.set(e.pod, (p = { namespace: m.ns, name: m.name, edges: [] }));
      p.edges.push({ dst: e.dst, count: delta });
      sent.set(k, e.count);
    }
    if (deferred) this.deferred.inc(deferred);
    if (!pods.size) return null;
    return {
      report: { v: 2, kind: "agent", node, pods: [...pods.values()] },
      commit: () => {
        for (const [k, c] of sent) this.reported.set(k, c);
      },
    };
  }
}

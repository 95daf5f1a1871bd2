// What the collector needs from the cluster view to accept a report: whether a caller may speak
// for a workload (bindCaller), which workloads a fallback's caller evidence names, and the merge
// of the fallback's and the node agents' side reports into the graph (a registered host becomes
// an outbound edge, anything else an unknown destination; every refusal says why).
import type { DiagnoseStore } from "../diagnose/store.js";
import type { Graph } from "../model/graph.js";
import { emptyStats } from "../model/graph.js";
import { workloadOfPod } from "../model/identity.js";
import { fqdnError } from "../istio/validate.js";
import type { Binder, Fail } from "../collector/server.js";
import type { FallbackReport } from "../collector/fallback-report.js";
import type { AgentReport } from "../collector/agent-report.js";
import type { Logger } from "../log.js";
import type { ClusterView } from "./cluster-view.js";

export class ReportMerger {
  /** Diagnose's windowed store (set by the controller command); kernel signals go there. */
  diagnose: DiagnoseStore | null = null;

  constructor(
    private readonly view: ClusterView,
    private readonly graph: Graph,
    private readonly ready: () => boolean,
    private readonly touched: (ns: string, workload: string) => void,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /**
   * May `caller` report for ns/workload? Its SPIFFE namespace must be `ns`, and a pod of that
   * workload must run as its service account (a SPIFFE ID names ns + service account only).
   */
  bindCaller: Binder = (caller, ns, workload, pod) => {
    if (!this.ready()) return { status: 503, reason: "not-ready", detail: "collector has not synced pods yet; retry" };
    if (caller.namespace !== ns)
      return {
        status: 403,
        reason: "identity-mismatch",
        detail: `caller ${caller.namespace}/${caller.serviceAccount} may not report for namespace ${ns}`,
      };
    const pods = this.view.pods.get(`${ns}/${workload}`);
    // Retryable: a new workload's first report can beat its pod's watch event (or a stalled
    // watch that the next relist repairs); the filter keeps the data and sends it again.
    if (!pods?.size)
      return {
        status: 503,
        reason: "unknown-workload",
        detail: `no pod of workload ${ns}/${workload} known yet; retry`,
      };
    // The pod a report names must be one of the workload's, running as the caller: per-pod
    // fairness in the graph is keyed by it, so an invented name must not buy a fresh share.
    if (pod) {
      const p = this.view.podsByName.get(`${ns}/${pod}`);
      if (!p) return { status: 503, reason: "unknown-workload", detail: `no pod ${ns}/${pod} known yet; retry` };
      if (workloadOfPod(p) !== workload || (p.spec?.serviceAccountName ?? "default") !== caller.serviceAccount)
        return {
          status: 403,
          reason: "identity-mismatch",
          detail: `pod ${ns}/${pod} is not a pod of ${ns}/${workload} running as ${caller.serviceAccount}`,
        };
      return null;
    }
    for (const p of pods.values()) if ((p.spec?.serviceAccountName ?? "default") === caller.serviceAccount) return null;
    return {
      status: 403,
      reason: "identity-mismatch",
      detail: `no pod of ${ns}/${workload} runs as service account ${caller.serviceAccount}`,
    };
  };

  /**
   * The workloads a fallback's caller evidence names: the pod at its address (TPROXY keeps it),
   * checked against the mesh identity when both are known; else every workload of the namespace
   * whose pods run as the service account (a SPIFFE ID names no more: over-inclusion only widens
   * a Sidecar). A string: why nothing matches.
   */
  callerWorkloads(c: FallbackReport["edges"][number]["caller"]): string[] | string {
    if (c.podIp) {
      const p = this.view.podsByIp.get(c.podIp);
      if (!p) return `no pod at ${c.podIp}`;
      if (c.namespace && p.metadata?.namespace !== c.namespace)
        return `pod at ${c.podIp} is not in namespace ${c.namespace}`;
      if (c.serviceAccount && (p.spec?.serviceAccountName ?? "default") !== c.serviceAccount)
        return `pod at ${c.podIp} does not run as ${c.serviceAccount}`;
      return [`${p.metadata!.namespace}/${workloadOfPod(p)}`];
    }
    if (!c.namespace || !c.serviceAccount) return "caller has neither a pod address nor a mesh identity";
    const out: string[] = [];
    for (const [k, pods] of this.view.pods) {
      if (!k.startsWith(`${c.namespace}/`)) continue;
      for (const p of pods.values())
        if ((p.spec?.serviceAccountName ?? "default") === c.serviceAccount) {
          out.push(k);
          break;
        }
    }
    return out.length ? out : `no pod of namespace ${c.namespace} runs as ${c.serviceAccount}`;
  }

  /**
   * Merge what the fallback forwarded as edges of each caller workload: a registered host becomes
   * an outbound edge (imported at the next reconcile, queued now); an unregistered one an unknown
   * destination (reported with a suggested ServiceEntry, never imported).
   */
  mergeFallback = (r: FallbackReport): Fail | null => {
    if (!this.ready()) return [503, "not-ready", "collector has not synced pods yet; retry"];
    const index = this.view.hostIndex();
    let merged = 0;
    const problems: string[] = [];
    for (const e of r.edges) {
      const host = e.host.toLowerCase();
      const bad = fqdnError(host);
      if (bad) {
        problems.push(`${host}: ${bad}`);
        continue;
      }
      const who = this.callerWorkloads(e.caller);
      if (typeof who === "string") {
        problems.push(who);
        continue;
      }
      for (const key of who) {
        const [ns, name] = key.split("/");
        if (index.exportedTo(host, ns) === false) {
          problems.push(`${host} is not exported to ${ns}`);
          continue;
        }
        const n = this.graph.node(ns, name);
        if (!n) {
          problems.push("graph full");
          continue;
        }
        const s = emptyStats(this.now());
        s.count = e.count;
        const ok = index.has(host)
          ? this.graph.addEdge(
              n,
              {
                dir: "outbound",
                cluster: `outbound|${e.port}||${host}`,
                authority: host,
                proto: e.proto === "HTTP" ? "HTTP/1.1" : "TLS",
              },
              s,
              "fallback",
            )
          : this.graph.addUnknown(
              n,
              {
                kind: "passthrough",
                dst: "",
                authority: e.proto === "HTTP" ? host : "",
                sni: e.proto === "TLS" ? host : "",
                proto: e.proto,
              },
              s,
            );
        if (ok) {
          merged++;
          this.touched(ns, name);
        }
      }
    }
    return this.outcome("fallback", merged, problems);
  };

  /**
   * Merge a node agent's connect-time L4 edges: each pod must exist in the informer, on the node
   * the agent names (an agent speaks for its own node only); each original destination becomes a
   * passthrough destination of the pod's workload, imported when the catalog defines the address
   * (ClusterIP, ServiceEntry address: hostsOfUnknown), else reported with a suggested ServiceEntry.
   */
  mergeAgent = (r: AgentReport): Fail | null => {
    if (!this.ready()) return [503, "not-ready", "collector has not synced pods yet; retry"];
    let merged = 0;
    const problems: string[] = [];
    for (const p of r.pods) {
      const key = `${p.namespace}/${p.name}`;
      const pod = this.view.podsByName.get(key);
      if (!pod) {
        problems.push(`no pod ${key}`);
        continue;
      }
      if (pod.spec?.nodeName !== r.node) {
        problems.push(`pod ${key} is not on node ${r.node}`);
        continue;
      }
      const workload = workloadOfPod(pod);
      const n = this.graph.node(p.namespace, workload);
      if (!n) {
        problems.push("graph full");
        continue;
      }
      for (const e of p.edges) {
        const s = emptyStats(this.now());
        s.count = e.count;
        if (this.graph.addUnknown(n, { kind: "passthrough", dst: e.dst, authority: "", sni: "", proto: "TCP" }, s))
          merged++;
        else problems.push("graph full");
      }
      if (p.edges.length) this.touched(p.namespace, workload);
    }
    // Kernel signals, for pods the informer places on the reporting node only.
    if (r.kernel && this.diagnose) {
      const pods = r.kernel.pods.filter((p) => {
        const pod = this.view.podsByName.get(`${p.namespace}/${p.name}`);
        if (!pod || pod.spec?.nodeName !== r.node) {
          problems.push(`kernel signals for ${p.namespace}/${p.name}, not a pod of node ${r.node}`);
          return false;
        }
        this.diagnose!.remember(`${p.namespace}/${p.name}`, `${p.namespace}/${workloadOfPod(pod)}`);
        merged++;
        return true;
      });
      this.diagnose.addKernel(r.node, { ...r.kernel, pods }, this.now());
    }
    return this.outcome("agent", merged, problems, { node: r.node });
  };

  /** Entries a side report could not merge are logged; a report of nothing mergeable is refused. */
  private outcome(kind: string, merged: number, problems: string[], fields: object = {}): Fail | null {
    if (problems.length)
      this.log("warn", `${kind} report entries not merged`, { ...fields, count: problems.length, first: problems[0] });
    return merged === 0 && problems.length ? [403, "unknown-workload", problems[0]] : null;
  }
}

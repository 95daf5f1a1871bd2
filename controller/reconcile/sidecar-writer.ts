// Carrying out a decision: the Sidecar applied by server-side apply (field manager "meshtune") or
// deleted, an Event on it, the estimated savings as an annotation, hosts Istio's validation
// refused logged once per change, and a skipped workload said once per change of reason.
import type { KubernetesObject, KubernetesObjectApi } from "@kubernetes/client-node";
import type { Counter } from "prom-client";
import { apply, isNotFound } from "../k8s/kube.js";
import { validateSidecar } from "../sidecar/validate.js";
import { estimateSavings } from "../sidecar/savings.js";
import type { SidecarObj } from "../sidecar/generate.js";
import { ANNOTATION, type Decision } from "./decide.js";
import type { ClusterView, Obj } from "./cluster-view.js";
import type { Logger } from "../log.js";

/** What a Sidecar change does to its host list (dry-run diff and apply logs). */
export function hostDiff(before: string[], after: string[]): { added: string[]; removed: string[] } {
  const b = new Set(before),
    a = new Set(after);
  return { added: after.filter((h) => !b.has(h)), removed: before.filter((h) => !a.has(h)) };
}

export interface WriterMetrics {
  applied: Counter<"action">;
  rejectedHosts: Counter;
}

export class SidecarWriter {
  /** Last decision per workload (status / recommend-only report). */
  readonly decisions = new Map<string, Decision>();
  private readonly rejectedSeen = new Map<string, string>();

  constructor(
    private readonly api: KubernetesObjectApi,
    private readonly view: ClusterView,
    private readonly dryRun: boolean,
    private readonly metrics: WriterMetrics,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  private savings(sc: SidecarObj): string {
    const s = estimateSavings(sc, this.view.catalogNow());
    return `clusters ${s.before.clusters}->${s.after.clusters} (-${s.savedPct.clusters}%), endpoints ${s.before.endpoints}->${s.after.endpoints} (-${s.savedPct.endpoints}%)`;
  }

  /** Carry out a decision for workload ns/name (its Sidecar has the workload's name). */
  async act(ns: string, name: string, d: Decision): Promise<void> {
    const key = `${ns}/${name}`;
    const prev = this.decisions.get(key);
    this.metrics.applied.inc({ action: d.action });
    if ((d.action === "apply" || d.action === "recommend" || d.action === "skip") && d.rejected?.length) {
      this.metrics.rejectedHosts.inc(d.rejected.length);
      const sig = d.rejected.map((r) => r.candidate).join(",");
      if (this.rejectedSeen.get(key) !== sig) {
        this.rejectedSeen.set(key, sig);
        this.log("warn", "hosts rejected by Istio validation; not applied", {
          workload: key,
          rejected: d.rejected.map((r) => `${r.candidate} (${r.source}): ${r.reason}`),
        });
      }
    }
    if (d.action === "apply") await this.applySidecar(ns, name, key, d);
    else if (d.action === "delete") {
      if (!this.dryRun) {
        try {
          await this.api.delete({
            apiVersion: "networking.istio.io/v1beta1",
            kind: "Sidecar",
            metadata: { name: d.name, namespace: ns },
          });
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
        this.view.recordSidecar(ns, name, null);
      }
      this.log("info", "Sidecar deleted", { sidecar: key, reason: d.reason, dryRun: this.dryRun });
      if (!this.dryRun)
        await this.event(ns, name, "Deleted", `meshtune deleted its Sidecar ${key}: ${d.reason}`, "Warning");
    } else if (
      d.action === "skip" &&
      /user-owned/.test(d.reason) &&
      (prev?.action !== "skip" || prev.reason !== d.reason)
    ) {
      // Once per change of reason, not on every reconcile.
      this.log("info", "workload skipped", { workload: key, reason: d.reason });
      if (!this.dryRun) await this.event(ns, name, "Skipped", `meshtune left ${key} alone: ${d.reason}`, "Warning");
    }
    this.decisions.set(key, d);
  }

  private async applySidecar(ns: string, name: string, key: string, d: Extract<Decision, { action: "apply" }>) {
    d.sidecar.metadata.annotations = {
      ...d.sidecar.metadata.annotations,
      [`${ANNOTATION}estimated-savings`]: this.savings(d.sidecar),
    };
    validateSidecar(d.sidecar);
    const cur = this.view.sidecar(ns, name);
    const same = cur && JSON.stringify(cur.spec) === JSON.stringify(d.sidecar.spec);
    if (same && !this.dryRun) return;
    const res = await apply(this.api, d.sidecar as unknown as KubernetesObject, this.dryRun);
    if (!this.dryRun) this.view.recordSidecar(ns, name, res as Obj);
    this.decisions.set(key, d); // what is applied is reported at once, not after the Event round trip
    const diff = hostDiff(cur?.spec?.egress?.[0]?.hosts ?? [], d.sidecar.spec.egress[0].hosts);
    this.log("info", this.dryRun ? "dry-run: Sidecar would be applied" : "Sidecar applied", {
      sidecar: key,
      created: !cur,
      ...diff,
      expired: d.dropped,
    });
    if (!this.dryRun)
      await this.event(
        ns,
        d.sidecar.metadata.name,
        "Applied",
        `meshtune applied Sidecar with ${d.sidecar.spec.egress[0].hosts.length} egress hosts`,
        "Normal",
      );
  }

  private async event(ns: string, name: string, reason: string, message: string, type: "Normal" | "Warning") {
    const now = new Date(this.now()).toISOString();
    try {
      await this.api.create({
        apiVersion: "v1",
        kind: "Event",
        metadata: { generateName: `${name}.`, name: `${name}.${this.now().toString(36)}`, namespace: ns },
        involvedObject: { apiVersion: "networking.istio.io/v1beta1", kind: "Sidecar", name, namespace: ns },
        reason,
        message,
        type,
        source: { component: "meshtune-controller" },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      } as KubernetesObject);
    } catch (e) {
      this.log("warn", "could not record event", { error: (e as Error).message });
    }
  }
}

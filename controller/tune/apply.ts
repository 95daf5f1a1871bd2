// Opted-in application of tuning (controller --apply-tuning rules,resources,cryptomb), with the
// Sidecars' ownership and safety rules:
//  - only for opted-in namespaces/workloads (meshtune.io/enabled), only in --mode apply, and
//    --dry-run sends dryRun=All;
//  - mesh rules: meshtune writes only its own VirtualServices/DestinationRules (label
//    app.kubernetes.io/managed-by=meshtune); a same-named object of someone else is left alone,
//    and hosts a user object covers never get one (tune.ts userHosts). Its own object is deleted
//    when the user's object appears, the namespace opts out or the Service is gone; not when
//    traffic merely pauses (a rule from older evidence stays until newer evidence replaces it).
//    Two objects for one host do not combine: two mesh VirtualServices with the same host are
//    undefined behaviour (Istio analyzer IST0109, pkg/config/analysis/msg/messages.yaml), and of
//    two DestinationRules only the first one's top-level trafficPolicy is used
//    (pilot/pkg/model/destination_rule.go mergeDestinationRule, rule 2). So the user's wins;
//  - workload patches (sidecar resources, CryptoMB) are server-side applies of just those
//    fields, each concern under its own field manager and never forced: a field someone else
//    set (kubectl, Helm, GitOps) is a conflict (Kubernetes docs, Server-Side Apply: "Conflicts"),
//    reported and skipped, never overwritten. Withdrawal applies an empty body under the same
//    manager, which removes exactly the fields meshtune alone owns ("Field management").
//  - a pod-template change rolls the workload, so: not before the Sidecar's observation window,
//    not for changes under 25 %, and at most maxRollouts per pass (the rest say so and wait).
import type { KubernetesObject, KubernetesObjectApi } from "@kubernetes/client-node";
import { PatchStrategy } from "@kubernetes/client-node";
import { isNotFound, statusCode, statusMessage } from "../k8s/kube.js";
import type { Tuning } from "./tune.js";

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
export type TuneKind = "rules" | "resources" | "cryptomb";
export const TUNE_KINDS: TuneKind[] = ["rules", "resources", "cryptomb"];
export const RULES_MANAGER = "meshtune",
  RESOURCES_MANAGER = "meshtune-resources",
  CRYPTOMB_MANAGER = "meshtune-cryptomb";
const MANAGED = "app.kubernetes.io/managed-by";

export interface TuneOutcome {
  kind: TuneKind;
  object: string;
  action: "applied" | "unchanged" | "skipped" | "deleted" | "withdrawn" | "failed";
  reason: string;
  dryRun?: boolean;
}

/** What the applier needs to know about the cluster (the controller's informers). */
export interface TuneWorld {
  namespaceEnabled(ns: string): boolean;
  /** Opted in, one of these proxy kinds, and observed for the minimum window; else why not. */
  workloadReady(key: string, proxies: string[]): true | string;
  /** The workload's controller (Deployment/StatefulSet/DaemonSet) or why it has none meshtune may patch. */
  controllerOf(key: string): { apiVersion: string; kind: string; name: string; namespace: string } | string;
  /** VirtualServices and DestinationRules in the cluster, full objects. */
  rules(): Obj[];
  /** Hosts (FQDN) a user (not meshtune) VirtualService / DestinationRule covers. */
  userHosts(kind: "VirtualService" | "DestinationRule"): Set<string>;
  serviceExists(host: string): boolean;
}

export interface TuneApplyOptions {
  kinds: Set<TuneKind>;
  dryRun: boolean;
  maxRollouts: number;
  minChange?: number;
}

export class TuningApplier {
  constructor(
    private readonly api: KubernetesObjectApi,
    private readonly o: TuneApplyOptions,
  ) {}

  private ssa(obj: Obj, manager: string): Promise<Obj> {
    return this.api.patch(
      obj as KubernetesObject,
      undefined,
      this.o.dryRun ? "All" : undefined,
      manager,
      false,
      PatchStrategy.ServerSideApply,
    ) as Promise<Obj>;
  }

  /** One pass: every item is handled on its own; one failure never stops the others. */
  async run(t: Tuning, w: TuneWorld): Promise<TuneOutcome[]> {
    const out: TuneOutcome[] = [];
    const guard = async (kind: TuneKind, object: string, f: () => Promise<TuneOutcome | null>) => {
      try {
        const r = await f();
        if (r)
          out.push(
            this.o.dryRun && ["applied", "deleted", "withdrawn"].includes(r.action) ? { ...r, dryRun: true } : r,
          );
      } catch (e) {
        out.push({ kind, object, action: "failed", reason: statusMessage(e) });
      }
    };
    if (this.o.kinds.has("rules")) await this.rules(t, w, guard);
    let rollouts = 0;
    const budget = () => rollouts < this.o.maxRollouts;
    for (const kind of ["resources", "cryptomb"] as const) {
      if (!this.o.kinds.has(kind)) continue;
      const items =
        kind === "resources"
          ? t.resources.map((r) => ({
              workload: r.workload,
              patch: r.patch as Obj,
              keep: true,
              withdrawWhy: null as string | null,
            }))
          : t.cryptomb.map((c) => ({
              workload: c.workload,
              patch: c.patch as Obj | null,
              keep: c.code === "unknown-rate" || c.code === "low-rate" || c.code === "no-tls-evidence",
              withdrawWhy: c.apply ? null : c.why,
            }));
      for (const it of items)
        await guard(kind, it.workload, async () => {
          const r = await this.workloadPatch(kind, it, w, budget);
          if (r.action === "applied" || r.action === "withdrawn") rollouts++;
          return r;
        });
    }
    return out;
  }

  private async rules(
    t: Tuning,
    w: TuneWorld,
    guard: (k: TuneKind, o: string, f: () => Promise<TuneOutcome | null>) => Promise<void>,
  ): Promise<void> {
    const live = new Map(w.rules().map((o) => [`${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`, o]));
    const desired = new Set<string>();
    for (const rec of t.rules)
      for (const obj of [rec.virtualService, rec.destinationRule]) {
        if (!obj) continue;
        const id = `${obj.kind}/${obj.metadata.namespace}/${obj.metadata.name}`;
        desired.add(id);
        await guard("rules", id, async () => {
          const cur = live.get(id);
          if (!w.namespaceEnabled(obj.metadata.namespace)) {
            const why = `namespace ${obj.metadata.namespace} not opted in (meshtune.io/enabled)`;
            if (cur?.metadata?.labels?.[MANAGED] !== "meshtune")
              return { kind: "rules", object: id, action: "skipped", reason: why };
            await this.remove(cur);
            return { kind: "rules", object: id, action: "deleted", reason: why };
          }
          if (cur && cur.metadata?.labels?.[MANAGED] !== "meshtune")
            return { kind: "rules", object: id, action: "skipped", reason: `${id} exists and is user-owned` };
          if (cur && canon(cur.spec) === canon(obj.spec))
            return { kind: "rules", object: id, action: "unchanged", reason: "spec as recommended" };
          try {
            await this.ssa(obj, RULES_MANAGER);
          } catch (e) {
            if (statusCode(e) === 409)
              return {
                kind: "rules",
                object: id,
                action: "skipped",
                reason: `a field was changed by someone else; not overridden: ${statusMessage(e)}`,
              };
            throw e;
          }
          return {
            kind: "rules",
            object: id,
            action: "applied",
            reason: cur ? "spec changed with the traffic" : "created",
          };
        });
      }
    for (const [id, cur] of live) {
      if (desired.has(id) || cur.metadata?.labels?.[MANAGED] !== "meshtune") continue;
      const host: string = cur.kind === "VirtualService" ? cur.spec?.hosts?.[0] : cur.spec?.host;
      const why = !w.namespaceEnabled(cur.metadata.namespace)
        ? `namespace ${cur.metadata.namespace} opted out`
        : w.userHosts(cur.kind).has(host)
          ? `a user ${cur.kind} now covers ${host} (the user's object wins)`
          : !w.serviceExists(host)
            ? `${host} is no longer in the catalog`
            : null;
      if (!why) continue; // no fresh recommendation (traffic paused): keep what was applied
      await guard("rules", id, async () => {
        await this.remove(cur);
        return { kind: "rules", object: id, action: "deleted", reason: why };
      });
    }
  }

  private async remove(cur: Obj): Promise<void> {
    try {
      await this.api.delete(
        {
          apiVersion: cur.apiVersion,
          kind: cur.kind,
          metadata: { name: cur.metadata.name, namespace: cur.metadata.namespace },
        },
        undefined,
        this.o.dryRun ? "All" : undefined,
      );
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  private async workloadPatch(
    kind: "resources" | "cryptomb",
    it: { workload: string; patch: Obj | null; keep: boolean; withdrawWhy: string | null },
    w: TuneWorld,
    budget: () => boolean,
  ): Promise<TuneOutcome> {
    const manager = kind === "resources" ? RESOURCES_MANAGER : CRYPTOMB_MANAGER;
    const ctl = w.controllerOf(it.workload);
    if (typeof ctl === "string") return { kind, object: it.workload, action: "skipped", reason: ctl };
    const id = `${ctl.kind}/${ctl.namespace}/${ctl.name}`;
    let cur: Obj;
    try {
      cur = (await this.api.read({
        apiVersion: ctl.apiVersion,
        kind: ctl.kind,
        metadata: { name: ctl.name, namespace: ctl.namespace },
      })) as Obj;
    } catch (e) {
      if (isNotFound(e)) return { kind, object: id, action: "skipped", reason: `${id} not found` };
      throw e;
    }
    const ours = (cur.metadata?.managedFields ?? []).some((f: Obj) => f.manager === manager);
    // Resources size sidecars; CryptoMB is for whatever terminates TLS, gateways first.
    const ready = w.workloadReady(it.workload, kind === "resources" ? ["sidecar"] : ["sidecar", "gateway"]);
    // Opted out (not merely still observing), or a definite "no" (CryptoMB: no capable node).
    const optedOut = ready !== true && !ready.startsWith("observing");
    const withdraw = optedOut ? ready : !it.patch && !it.keep ? it.withdrawWhy : null;
    if (withdraw) {
      if (!ours) return { kind, object: id, action: "skipped", reason: withdraw };
      if (!budget())
        return {
          kind,
          object: id,
          action: "skipped",
          reason: `rollout budget of ${this.o.maxRollouts} per pass reached; withdrawal next pass`,
        };
      await this.ssa(
        { apiVersion: ctl.apiVersion, kind: ctl.kind, metadata: { name: ctl.name, namespace: ctl.namespace } },
        manager,
      );
      return { kind, object: id, action: "withdrawn", reason: withdraw };
    }
    if (ready !== true) return { kind, object: id, action: "skipped", reason: ready };
    if (!it.patch) return { kind, object: id, action: "skipped", reason: it.withdrawWhy ?? "nothing to apply" };
    const want: Obj = it.patch.spec.template;
    const have: Obj = cur.spec?.template ?? {};
    if (
      kind === "resources" &&
      ours &&
      withinChange(have.metadata?.annotations ?? {}, want.metadata.annotations, this.o.minChange ?? 0.25)
    )
      return {
        kind,
        object: id,
        action: "unchanged",
        reason: `within ${Math.round((this.o.minChange ?? 0.25) * 100)} % of what is applied: not worth a rollout`,
      };
    if (kind === "cryptomb" && ours && sameFields(have, want))
      return { kind, object: id, action: "unchanged", reason: "applied as recommended" };
    // A field set to another value by someone else would conflict: say so without asking again
    // every pass (the SSA conflict below still guards against races).
    const taken = theirs(cur, want, ["spec", "template"], manager);
    if (taken) return { kind, object: id, action: "skipped", reason: `user-owned field, not overridden: ${taken}` };
    if (!budget())
      return {
        kind,
        object: id,
        action: "skipped",
        reason: `rollout budget of ${this.o.maxRollouts} per pass reached; next pass`,
      };
    try {
      await this.ssa(
        {
          ...it.patch,
          apiVersion: ctl.apiVersion,
          kind: ctl.kind,
          metadata: { name: ctl.name, namespace: ctl.namespace },
        },
        manager,
      );
    } catch (e) {
      if (statusCode(e) === 409)
        return { kind, object: id, action: "skipped", reason: `user-owned field, not overridden: ${statusMessage(e)}` };
      throw e;
    }
    return { kind, object: id, action: "applied", reason: ours ? "changed with the traffic" : "first application" };
  }
}

/** JSON with sorted keys: the client's deserialisation does not keep the server's key order. */
const canon = (v: unknown): string =>
  JSON.stringify(v, (_k, x) =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1)))
      : x,
  );

/** Every wanted field already present with the same value. */
function sameFields(have: Obj, want: Obj): boolean {
  return Object.entries(want).every(([k, v]) =>
    typeof v === "object" && v && !Array.isArray(v) ? sameFields(have?.[k] ?? {}, v) : canon(have?.[k]) === canon(v),
  );
}

/** The first wanted leaf set to a different value that `manager` does not own (managedFields' fieldsV1), as ".a.b". */
function theirs(cur: Obj, want: Obj, prefix: string[], manager: string): string | null {
  const mine = (cur.metadata?.managedFields ?? []).find((f: Obj) => f.manager === manager)?.fieldsV1 ?? {};
  const walk = (w: Obj, have: Obj | undefined, f: Obj | undefined, path: string[]): string | null => {
    for (const [k, v] of Object.entries(w)) {
      const h = have?.[k],
        fk = f?.[`f:${k}`];
      if (v && typeof v === "object" && !Array.isArray(v)) {
        const r = walk(v, h, fk, [...path, k]);
        if (r) return r;
      } else if (h !== undefined && canon(h) !== canon(v) && !fk)
        return `.${[...path, k].join(".")} is ${JSON.stringify(h)}`;
    }
    return null;
  };
  const at = (o: Obj | undefined, p: string[], f = false) =>
    p.reduce<Obj | undefined>((c, k) => c?.[f ? `f:${k}` : k], o);
  return walk(want, at(cur, prefix), at(mine, prefix, true), prefix);
}

/** Quantities "250m", "1", "128Mi", "1Gi" → a number in one unit per kind (cores or bytes). */
export function quantity(q: string | undefined): number | null {
  const m = /^([0-9.]+)(m|Ki|Mi|Gi|k|M|G)?$/.exec(q ?? "");
  if (!m) return null;
  const mul = { m: 1e-3, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, M: 1e6, G: 1e9 }[m[2] as "m"] ?? 1;
  return Number(m[1]) * mul;
}

/** Every recommended annotation is present and within `frac` of the applied value. */
export function withinChange(have: Record<string, string>, want: Record<string, string>, frac: number): boolean {
  return Object.entries(want).every(([k, v]) => {
    const a = quantity(have[k]),
      b = quantity(v);
    return a !== null && b !== null && Math.abs(a - b) <= frac * Math.max(a, b);
  });
}

// The controller's options: the decision's (decide.ts) plus the loop's timing, dry-run, opt-in
// default and the opted-in tuning.
import type { DecideOptions } from "./decide.js";
import type { TuneKind } from "../tune/apply.js";

export interface ControllerOptions extends DecideOptions {
  defaultEnabled: boolean;
  dryRun: boolean;
  clusterDomain: string;
  flushDelayMs?: number; // batch window for learned-state writes (default 2 s)
  resyncMs?: number; // every workload is reconciled at least this often while leading (default 5 min)
  relistMs?: number; // every informer relists this often (jittered), repairing a silently stalled watch (default 5 min)
  /** The mesh config ConfigMap ("istio-system/istio"; key `mesh`). */
  meshConfigMap?: string;
  now?: () => number;
  /** Opted-in tuning to apply (tune/apply.ts); none by default: tuning is recommend-only. */
  applyTuning?: TuneKind[];
  tuneIntervalMs?: number; // default 10 min
  maxRollouts?: number; // pod-template patches per pass (default 5)
  istioVersion?: [number, number];
  tuneMinRequests?: number; // default 100
}

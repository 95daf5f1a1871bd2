// Node labels from the features: meshtune's own under meshtune.io/, and, only where Node Feature
// Discovery is absent, the CPU flags under NFD's names so one nodeAffinity works with or without
// NFD. Where NFD runs its labels are read, never written (NFD removes labels it did not discover
// on its next run: NFD docs, usage/features "Consecutive runs of nfd-worker will update the labels").
import { NFD_CPUID } from "./cpu-flags.js";
import type { NodeFeatures } from "./features.js";

export const LABEL = {
  datapath: "meshtune.io/datapath",
  tcpstats: "meshtune.io/tcpstats",
  ambient: "meshtune.io/ambient",
  splice: "meshtune.io/sockmap-splice",
  hazard: "meshtune.io/sockmap-wakeup-hazard",
  cryptomb: "meshtune.io/cryptomb",
  qat: "meshtune.io/qat",
  kernel: "meshtune.io/kernel-version",
} as const;

// A label value: ≤ 63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric
// (k8s.io/apimachinery validation.IsValidLabelValue).
export function labelValue(s: string): string {
  return s
    .replace(/[^A-Za-z0-9_.-]/g, "_")
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
}

export function nodeLabels(f: NodeFeatures): Record<string, string> {
  const b = (v: boolean) => (v ? "true" : "false");
  const l: Record<string, string> = {
    [LABEL.datapath]: b(f.datapath.ok),
    [LABEL.tcpstats]: b(f.datapath.ok && f.tcpstats.ok),
    [LABEL.ambient]: b(f.datapath.ok && f.ambient.ok),
    [LABEL.splice]: b(f.datapath.ok && f.splice.ok),
    [LABEL.hazard]: b(f.kernel.wakeupHazard),
    [LABEL.cryptomb]: b(f.cryptomb.capable),
    [LABEL.qat]: b(f.qat.devices > 0),
  };
  const kv = labelValue(f.kernel.version);
  if (kv) l[LABEL.kernel] = kv;
  if (!f.nfd) for (const flag of f.cpu.flags) l[`${NFD_CPUID}${flag}`] = "true";
  return l;
}

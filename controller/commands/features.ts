// `meshtune features`: what this node can do and the labels the agent would publish for it.
import { gatherNodeInputs, evaluate } from "../node/features.js";
import { nodeLabels } from "../node/labels.js";
import { runProbe } from "../node/probe.js";

export interface FeaturesFlags {
  cgroup?: string;
  proc: string;
  sys: string;
  output: string;
}

export function featuresCommand(f: FeaturesFlags): void {
  const feats = evaluate(gatherNodeInputs({ proc: f.proc, sys: f.sys, probe: () => runProbe(f.cgroup) }));
  const labels = nodeLabels(feats);
  if (f.output === "json") {
    process.stdout.write(JSON.stringify({ features: feats, labels }, null, 2) + "\n");
    return;
  }
  const v = (x: { ok: boolean; reason?: string; note?: string }) =>
    x.ok ? (x.note ? `enabled (${x.note})` : "enabled") : `DISABLED: ${x.reason}`;
  process.stdout.write(
    [
      `kernel     ${feats.kernel.release}${feats.kernel.wakeupHazard ? " (sockmap wakeup hazard: no-op SK_SKB verdict)" : ""}`,
      `datapath   ${v(feats.datapath)}`,
      `tcpstats   ${feats.datapath.ok ? v(feats.tcpstats) : "DISABLED: needs the datapath"}`,
      `splice     ${feats.datapath.ok ? v(feats.splice) : "DISABLED: needs the datapath"}`,
      `ambient    ${feats.datapath.ok ? v(feats.ambient) : "DISABLED: needs the datapath"}${feats.datapath.ok && !feats.ambient.ok ? " (istio-cni keeps ambient pods)" : ""}`,
      `cryptomb   ${feats.cryptomb.capable ? "capable" : `incapable: missing ${feats.cryptomb.missing.join(", ")}`} (CPU flags from ${feats.cryptomb.source})`,
      `qat        ${feats.qat.devices} device(s)`,
      "labels:",
      ...Object.entries(labels).map(([k, x]) => `  ${k}=${x}`),
      "",
    ].join("\n"),
  );
}

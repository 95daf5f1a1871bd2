// The list views: all workloads, nodes (features and datapath), and the input report (what was
// read, what was skipped and why, limits, unregistered destinations with suggested ServiceEntries).
import type { DashboardData } from "../dashboard-data.js";
import { fmtNum, h, pre, table } from "./dom.js";

export function workloadsView(root: HTMLElement, d: DashboardData, ns: string, q: string): number {
  const rows = d.workloads.filter(
    (w) => (!ns || w.namespace === ns) && (!q || w.id.toLowerCase().includes(q.toLowerCase())),
  );
  root.append(
    h("h2", {}, `Workloads (${rows.length} of ${d.workloads.length})`),
    table(
      ["workload", "proxy", "decision", "hosts applied → recommended", "clusters before → after", "requests/s"],
      rows.map((w) => [
        h("a", { href: `#/workload/${w.id}`, class: "wl-link" }, w.id),
        w.proxy,
        w.action + (w.reason ? ` (${w.reason})` : ""),
        `${w.sidecar.applied?.length ?? "–"} → ${w.sidecar.recommended?.length ?? "–"}`,
        w.savings
          ? `${w.savings.before.clusters} → ${w.savings.after.clusters} (−${w.savings.savedPct.clusters} %)`
          : "–",
        fmtNum(w.rps, 2),
      ]),
      "Workloads",
    ),
  );
  return rows.length;
}

export function nodesView(root: HTMLElement, d: DashboardData): void {
  root.append(h("h2", {}, `Nodes (${d.nodes.length})`));
  if (!d.nodes.length) {
    root.append(
      h(
        "p",
        {},
        "No node data: the node agent publishes meshtune.io/ labels on each Node (give Node objects in --catalog offline).",
      ),
    );
    return;
  }
  root.append(
    table(
      ["node", "datapath", "features", "counters"],
      d.nodes.map((n) => [
        n.name,
        n.datapath,
        h(
          "ul",
          { class: "tags" },
          ...Object.entries(n.features).map(([k, v]) => h("li", { class: v === "false" ? "off" : "on" }, `${k}=${v}`)),
        ),
        Object.entries(n.counters)
          .map(([k, v]) => `${k} ${fmtNum(v, 0)}`)
          .join(", ") || "–",
      ]),
      "Nodes",
    ),
  );
}

export function reportView(root: HTMLElement, d: DashboardData): void {
  const r = d.report;
  root.append(h("h2", {}, "Report"));
  if (r.limits && !r.warnings?.includes(r.limits)) root.append(h("p", { class: "warn", role: "alert" }, r.limits));
  if (r.warnings?.length)
    root.append(
      h("h3", {}, `Check before applying (${r.warnings.length})`),
      h(
        "ul",
        { class: "warn", role: "alert", "aria-label": "Check before applying" },
        ...r.warnings.map((w) => h("li", {}, w)),
      ),
    );
  root.append(
    h("h3", {}, "Inputs"),
    table(
      ["input", "lines", "entries", "skipped (by reason)"],
      r.inputs.map((i) => [
        i.name,
        fmtNum(i.lines, 0),
        fmtNum(i.records, 0),
        Object.entries(i.skipped)
          .filter(([, n]) => n > 0)
          .map(([k, n]) => `${k} ${fmtNum(n, 0)}`)
          .join(", ") || "none",
      ]),
      "Inputs",
    ),
  );
  root.append(
    h("h3", {}, `Destinations outside the mesh registry (${r.unregistered.length})`),
    r.unregistered.length
      ? table(
          ["workload", "destination", "what", "count"],
          r.unregistered.map((u) => [
            u.workload,
            [u.dst, u.authority && `authority ${u.authority}`, u.sni && `sni ${u.sni}`].filter(Boolean).join(" "),
            u.kind === "blackhole" ? "BLOCKED (BlackHoleCluster)" : "unregistered (PassthroughCluster)",
            fmtNum(u.count, 0),
          ]),
          "Unregistered destinations",
        )
      : h("p", {}, "None."),
  );
  if (r.serviceEntries.length)
    root.append(
      h("h3", {}, "Suggested ServiceEntries (review before applying)"),
      pre(r.serviceEntries.join("---\n"), "Suggested ServiceEntries"),
    );
  if (r.proxiesSkipped.length)
    root.append(
      h("h3", {}, "Not sidecars (no Sidecar resource applies)"),
      table(
        ["workload", "kind", "why"],
        r.proxiesSkipped.map((p) => [p.workload, p.kind, p.why]),
        "Skipped proxies",
      ),
    );
  if (r.rejected.length)
    root.append(
      h("h3", {}, "Hosts refused by Istio validation"),
      table(
        ["workload", "candidate", "source", "reason"],
        r.rejected.map((x) => [x.workload, JSON.stringify(x.candidate), x.source, x.reason]),
        "Rejected hosts",
      ),
    );
  if (r.dataplane?.length) {
    const c = (x: { vcpu: number; memMB: number }) => `${fmtNum(x.vcpu * 1000, 1)} m, ${fmtNum(x.memMB, 1)} MB`;
    root.append(
      h("h3", {}, "Data plane per namespace (Istio 1.24 per-1,000-rps figures)"),
      table(
        ["namespace", "rps", "sidecars", "sidecars + meshtune", "ambient", "suggested", "ambient gives up"],
        r.dataplane.map((a) => [
          a.namespace,
          fmtNum(a.rps, 2),
          c(a.sidecar),
          c(a.accelerated),
          `${c(a.ambient)}${a.ambient.waypoint ? " (with waypoint)" : ""}`,
          a.choice,
          a.loses.ambient.join("; "),
        ]),
        "Data plane per namespace",
      ),
    );
  }
  if (r.text) root.append(h("h3", {}, "The CLI's report"), pre(r.text, "The CLI's report"));
  if (r.refused.length)
    root.append(
      h("h3", {}, "Recommendations refused by Istio validation"),
      table(
        ["object", "errors"],
        r.refused.map((x) => [x.object, x.errors.join("; ")]),
        "Refused objects",
      ),
    );
}

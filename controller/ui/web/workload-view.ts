// One workload: its Sidecar (applied vs recommended, as a host diff), learned hosts with first
// and last seen, the savings estimate, the recommendations with their YAML and rationale, and
// the latency attribution of its edges.
import type { AttributionView, DashboardData, WorkloadView } from "../dashboard-data.js";
import { fmtNum, fmtTime, h, pre, table } from "./dom.js";
import { attributionChart } from "./attribution-chart.js";

export function sidecarDiff(w: WorkloadView): { host: string; change: "added" | "removed" | "kept" }[] {
  const a = new Set(w.sidecar.applied ?? []),
    r = new Set(w.sidecar.recommended ?? []);
  return [...new Set([...a, ...r])]
    .sort()
    .map((host) => ({ host, change: a.has(host) && r.has(host) ? "kept" : r.has(host) ? "added" : "removed" }));
}

export function workloadView(root: HTMLElement, d: DashboardData, w: WorkloadView): void {
  root.append(
    h("h2", { id: "wl-title", tabindex: -1 }, w.id),
    h(
      "p",
      { class: "sub" },
      `${w.proxy} · ${w.pods} pod(s) known · ${fmtNum(w.rps, 2)} requests/s through the proxy · decision: ${w.action}${w.reason ? ` (${w.reason})` : ""}`,
    ),
  );

  const sec = (title: string, ...kids: (Node | string | null)[]) =>
    h("section", { "aria-label": title }, h("h3", {}, title), ...kids);
  const diff = sidecarDiff(w);
  const applied =
    w.sidecar.applied === null
      ? "no Sidecar in the cluster (or not known offline)"
      : `${w.sidecar.applied.length} hosts applied`;
  root.append(
    sec(
      "Sidecar: applied vs recommended",
      h(
        "p",
        {},
        `${applied}; ${w.sidecar.recommended === null ? "nothing recommended" : `${w.sidecar.recommended.length} hosts recommended`}`,
      ),
      diff.length
        ? h(
            "ul",
            { class: "diff", "aria-label": "Sidecar egress host diff" },
            ...diff.map((x) =>
              h(
                "li",
                { class: x.change },
                h(
                  "span",
                  { class: "sign", "aria-label": x.change },
                  x.change === "added" ? "+" : x.change === "removed" ? "−" : " ",
                ),
                x.host,
              ),
            ),
          )
        : null,
      w.sidecar.yaml
        ? h("details", {}, h("summary", {}, "Recommended Sidecar YAML"), pre(w.sidecar.yaml, "Recommended Sidecar"))
        : null,
    ),
  );

  const s = w.savings;
  root.append(
    sec(
      "Savings (model: xDS the proxy receives)",
      s
        ? table(
            ["", "clusters", "listeners", "routes", "endpoints"],
            [
              [
                "before",
                ...(["clusters", "listeners", "routes", "endpoints"] as const).map((k) => fmtNum(s.before[k], 0)),
              ],
              [
                "after",
                ...(["clusters", "listeners", "routes", "endpoints"] as const).map((k) => fmtNum(s.after[k], 0)),
              ],
              [
                "saved",
                ...(["clusters", "listeners", "routes", "endpoints"] as const).map(
                  (k) => `${fmtNum(s.savedPct[k], 0)} %`,
                ),
              ],
            ],
            "Savings",
          )
        : h("p", {}, "No estimate (needs a catalog of Services, and a Sidecar for this workload)."),
    ),
  );

  root.append(
    sec(
      "Learned destinations",
      w.learned.length
        ? table(
            ["host", "requests", "first seen", "last seen"],
            w.learned.map((l) => [l.host, fmtNum(l.requests, 0), fmtTime(l.firstSeenMs), fmtTime(l.lastSeenMs)]),
            "Learned destinations",
          )
        : h("p", {}, "No outbound traffic seen."),
    ),
  );

  root.append(
    sec(
      "Recommendations",
      ...(w.recommendations.length
        ? w.recommendations.map((r) =>
            h(
              "article",
              { class: "rec" },
              h("h4", {}, r.title),
              h("ul", {}, ...r.rationale.map((x) => h("li", {}, x))),
              r.yaml ? pre(r.yaml, r.title) : null,
            ),
          )
        : [h("p", {}, "None (run with --rules --resources --cryptomb, or the controller's tuning).")]),
    ),
  );

  const mine: AttributionView[] = d.attribution.filter((a) => a.client === w.id || a.server === w.id);
  root.append(
    sec(
      "Latency attribution",
      ...(mine.length
        ? mine.map((a) =>
            h("figure", {}, h("figcaption", {}, `${a.edge}: ${a.verdict} — ${a.rule}`), attributionChart(a)),
          )
        : [
            h(
              "p",
              {},
              "No per-request timings for this workload's edges (needs filter report v2 timings from both proxies, e.g. the controller).",
            ),
          ]),
    ),
  );
}

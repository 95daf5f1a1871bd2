// Stacked bars per time window: client proxy, network, server proxy and application mean time
// (ms). Plain SVG; a text table under it carries the same numbers for screen readers.
import type { AttributionView } from "../dashboard-data.js";
import { fmtTime, h, table } from "./dom.js";

// "not split": time the reports could not attribute (v1 reports carry totals only).
const PARTS = [
  ["clientProxyMs", "client proxy", "--v-proxy"],
  ["networkMs", "network", "--v-network"],
  ["serverProxyMs", "server proxy", "--v-node"],
  ["appMs", "application", "--v-app"],
  ["restMs", "not split", "--muted"],
] as const;
type Pt = AttributionView["points"][number] & { restMs: number };
const NS = "http://www.w3.org/2000/svg";

export function attributionChart(view: AttributionView): HTMLElement {
  const W = 640,
    H = 160,
    pad = 30;
  const a = {
    ...view,
    points: view.points.map((p): Pt => ({
      ...p,
      restMs: Math.max(0, p.totalMs - p.clientProxyMs - p.networkMs - p.serverProxyMs - p.appMs),
    })),
  };
  const max = Math.max(1, ...a.points.map((p) => PARTS.reduce((s, [k]) => s + p[k], 0)));
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute(
    "aria-label",
    `mean latency by component over ${a.points.length} windows, up to ${max.toFixed(1)} ms`,
  );
  const bw = Math.min(40, Math.max(2, (W - pad) / Math.max(1, a.points.length) - 2));
  a.points.forEach((p, i) => {
    let y = H - pad;
    for (const [k, , color] of PARTS) {
      const hgt = (p[k] / max) * (H - pad - 10);
      const r = document.createElementNS(NS, "rect");
      r.setAttribute("x", String(pad + i * (bw + 2)));
      r.setAttribute("y", String(y - hgt));
      r.setAttribute("width", String(bw));
      r.setAttribute("height", String(Math.max(0, hgt)));
      r.setAttribute("style", `fill: var(${color})`);
      svg.append(r);
      y -= hgt;
    }
  });
  const axis = document.createElementNS(NS, "text");
  axis.setAttribute("x", "2");
  axis.setAttribute("y", "12");
  axis.setAttribute("class", "axis");
  axis.textContent = `${max.toFixed(1)} ms`;
  svg.append(axis);
  const keys = h(
    "div",
    { class: "legend" },
    ...PARTS.map(([, t, c]) => h("span", { class: "key" }, h("i", { style: `background: var(${c})` }), t)),
  );
  const rows = a.points
    .slice(-10)
    .map((p) => [fmtTime(p.t), ...PARTS.map(([k]) => p[k].toFixed(2)), p.totalMs.toFixed(2)]);
  return h(
    "div",
    { class: "chart" },
    svg as unknown as HTMLElement,
    keys,
    h(
      "details",
      {},
      h("summary", {}, "numbers (last 10 windows, mean ms)"),
      table(["window", ...PARTS.map(([, t]) => t), "total"], rows, "latency attribution"),
    ),
  );
}

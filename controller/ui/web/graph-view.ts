// The dependency graph: Cytoscape.js drawing dagre's layered positions ("preset" layout), edges
// coloured by the diagnose verdict when one exists, else by error rate (Kiali's convention:
// red above 5 %, orange above 0.1 %). Keyboard: arrows move between nodes, Enter opens a workload,
// Escape clears; the focused node is announced to screen readers.
import cytoscape from "cytoscape";
import type { DashboardData, EdgeView } from "../dashboard-data.js";
import { layered } from "./layout.js";
import { fmtNum, h } from "./dom.js";

const VERDICT: Record<string, string> = {
  app: "--v-app",
  network: "--v-network",
  proxy: "--v-proxy",
  "node-pressure": "--v-node",
  healthy: "--v-ok",
  unknown: "--muted",
};
const css = (name: string) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";

export function edgeColorVar(e: EdgeView): string {
  if (e.verdict && e.verdict !== "unknown") return VERDICT[e.verdict];
  return e.errPct > 5 ? "--v-proxy" : e.errPct > 0.1 ? "--v-app" : "--edge";
}
export const edgeLabel = (e: EdgeView) =>
  `${fmtNum(e.rps, 2)} rps · ${fmtNum(e.errPct, 2)} % 5xx · p99 ${e.p99Ms === null ? "–" : `${fmtNum(e.p99Ms)} ms`}${e.verdict ? ` · ${e.verdict}` : ""}`;

export interface GraphHandle {
  filter(ns: string, query: string): number;
  destroy(): void;
  layoutMs: number;
}

export function graphView(root: HTMLElement, d: DashboardData, open: (workload: string) => void): GraphHandle {
  const t0 = performance.now();
  const pos = layered(d.graph.nodes, d.graph.edges);
  const layoutMs = performance.now() - t0;
  const outside = new Set(
    d.graph.nodes.filter((n) => n.kind === "blocked" || n.kind === "unregistered").map((n) => n.id),
  );
  const live = h("div", { class: "sr-only", "aria-live": "polite" });
  const box = h("div", {
    class: "graph",
    tabindex: 0,
    role: "application",
    "aria-label": "Dependency graph. Arrow keys move between nodes, Enter opens a workload, Escape clears.",
  });
  const info = h("div", { class: "graph-info", "aria-hidden": "true" }, "Select an edge or node for its traffic.");
  root.append(
    h("div", { class: "legend", "aria-label": "Node shapes" }, ...shapes()),
    h("div", { class: "legend", "aria-label": "Edge colours" }, ...legend()),
    box,
    info,
    live,
  );
  const cy = cytoscape({
    container: box,
    minZoom: 0.05,
    maxZoom: 3,
    textureOnViewport: true,
    hideEdgesOnViewport: d.graph.edges.length > 1500,
    elements: [
      ...d.graph.nodes.map((n) => ({
        group: "nodes" as const,
        data: { id: n.id, label: n.label, kind: n.kind, ns: n.namespace },
        position: pos.get(n.id) ?? { x: 0, y: 0 },
      })),
      ...d.graph.edges.map((e) => ({
        group: "edges" as const,
        data: {
          id: e.id,
          source: e.source,
          target: e.target,
          color: css(edgeColorVar(e)),
          dash: outside.has(e.target) ? "dashed" : "solid",
          w: Math.min(6, 1 + Math.log10(1 + e.rps)),
          label: edgeLabel(e),
        },
      })),
    ],
    layout: { name: "preset" },
    style: [
      {
        selector: "node",
        style: {
          "background-color": css("--node"),
          label: "data(label)",
          color: css("--fg"),
          "font-size": 11,
          // Below the node, on a backdrop: edges leave left to right at the node's middle, so a
          // label beside the node sat in their path.
          "text-valign": "bottom",
          "text-halign": "center",
          "text-margin-y": 3,
          "text-background-color": css("--bg"),
          "text-background-opacity": 0.85,
          "text-background-padding": "1px",
          width: 14,
          height: 14,
          "min-zoomed-font-size": 7,
        },
      },
      { selector: "node[kind = 'gateway']", style: { shape: "diamond", "background-color": css("--accent") } },
      { selector: "node[kind = 'ambient']", style: { shape: "hexagon", "background-color": css("--v-network") } },
      { selector: "node[kind = 'waypoint']", style: { shape: "barrel", "background-color": css("--v-node") } },
      { selector: "node[kind = 'service']", style: { shape: "triangle", "background-color": css("--muted") } },
      { selector: "node[kind = 'external']", style: { shape: "round-rectangle", "background-color": css("--v-ok") } },
      {
        selector: "node[kind = 'unregistered']",
        style: {
          shape: "round-rectangle",
          "background-opacity": 0,
          "border-width": 2,
          "border-style": "dashed",
          "border-color": css("--v-app"),
        },
      },
      { selector: "node[kind = 'blocked']", style: { shape: "octagon", "background-color": css("--v-proxy") } },
      {
        selector: "edge",
        style: {
          width: "data(w)",
          "line-color": "data(color)",
          "target-arrow-color": "data(color)",
          "target-arrow-shape": "triangle",
          "curve-style": "bezier",
          "line-style": "data(dash)" as never,
          "arrow-scale": 0.8,
          opacity: 0.8,
        },
      },
      {
        selector: "edge:selected, edge.hover",
        style: {
          label: "data(label)",
          "font-size": 10,
          color: css("--fg"),
          "text-background-color": css("--bg"),
          "text-background-opacity": 0.9,
          "text-background-padding": "2px",
          width: 4,
          opacity: 1,
        },
      },
      { selector: "node:selected, node.focus", style: { "border-width": 3, "border-color": css("--accent") } },
      { selector: ".faded", style: { opacity: 0.12 } },
      { selector: ".match", style: { "border-width": 3, "border-color": css("--accent"), "font-weight": "bold" } },
      { selector: ".hidden", style: { display: "none" } },
    ],
  });
  const say = (t: string) => {
    live.textContent = t;
    info.textContent = t;
  };
  const describe = (id: string) => {
    const n = cy.getElementById(id);
    const outs = d.graph.edges.filter((e) => e.source === id),
      ins = d.graph.edges.filter((e) => e.target === id);
    return `${n.data("kind")} ${id}: calls ${outs.length}, called by ${ins.length}${
      outs.length
        ? `; ${outs
            .slice(0, 3)
            .map((e) => `${e.target} ${edgeLabel(e)}`)
            .join("; ")}`
        : ""
    }`;
  };
  cy.on("tap", "node", (ev) => {
    const id = ev.target.id();
    if (["workload", "gateway", "ambient", "waypoint"].includes(ev.target.data("kind"))) open(id);
    else say(describe(id));
  });
  cy.on("tap", "edge", (ev) =>
    say(`${ev.target.data("source")} → ${ev.target.data("target")}: ${ev.target.data("label")}`),
  );
  cy.on("mouseover", "edge", (ev) => ev.target.addClass("hover"));
  cy.on("mouseout", "edge", (ev) => ev.target.removeClass("hover"));
  cy.fit(undefined, 20);

  let laidOutFor = "";
  let order: string[] = [];
  let at = -1;
  const visible = () =>
    cy
      .nodes()
      .filter((n) => !n.hasClass("hidden"))
      .map((n) => ({ id: n.id(), p: (n as cytoscape.NodeSingular).position() }))
      .sort((a, b) => a.p.y - b.p.y || a.p.x - b.p.x)
      .map((n) => n.id);
  box.addEventListener("keydown", (ev) => {
    if (!order.length) order = visible();
    if (["ArrowDown", "ArrowRight", "ArrowUp", "ArrowLeft"].includes(ev.key)) {
      ev.preventDefault();
      at = (at + (ev.key === "ArrowDown" || ev.key === "ArrowRight" ? 1 : order.length - 1)) % order.length;
      cy.nodes(".focus").removeClass("focus");
      const n = cy.getElementById(order[at]).addClass("focus");
      cy.center(n);
      say(describe(order[at]));
    } else if (ev.key === "Enter" && at >= 0) {
      const k = cy.getElementById(order[at]).data("kind");
      if (["workload", "gateway", "ambient", "waypoint"].includes(k)) open(order[at]);
    } else if (ev.key === "Escape") {
      cy.nodes(".focus").removeClass("focus");
      at = -1;
      say("");
    }
  });

  return {
    layoutMs,
    filter(ns: string, query: string): number {
      const q = query.trim().toLowerCase();
      cy.batch(() => {
        cy.elements().removeClass("hidden faded match");
        if (ns) {
          const inNs = cy.nodes().filter((n) => n.data("ns") === ns);
          const keep = inNs.union(inNs.neighborhood());
          cy.elements().not(keep).addClass("hidden");
          inNs.neighborhood().nodes().not(inNs).addClass("faded");
        }
        // A namespace view gets its own layered layout (a few nodes laid out in the whole mesh's
        // ranks would be scattered); the full layout comes back when the filter is cleared.
        if (ns !== laidOutFor) {
          const shown = cy.nodes().not(".hidden");
          const p = ns
            ? layered(
                shown.map((n) => ({ id: n.id(), label: n.data("label") as string })),
                shown
                  .connectedEdges()
                  .not(".hidden")
                  .map((e) => ({ source: e.data("source") as string, target: e.data("target") as string })),
              )
            : pos;
          shown.positions((n) => p.get(n.id()) ?? { x: 0, y: 0 });
          laidOutFor = ns;
        }
        if (q) {
          const m = cy
            .nodes()
            .not(".hidden")
            .filter((n) => n.id().toLowerCase().includes(q));
          m.addClass("match");
          cy.elements().not(m).not(m.connectedEdges()).addClass("faded");
        }
      });
      order = visible();
      at = -1;
      const shown = cy.nodes().not(".hidden");
      if (shown.length) cy.fit(q ? (cy.nodes(".match").length ? cy.nodes(".match") : shown) : shown, 30);
      return q ? cy.nodes(".match").length : shown.length;
    },
    destroy: () => cy.destroy(),
  };
}

/** Every node shape and what it stands for (the graph draws nothing the legend does not name). */
function shapes(): HTMLElement[] {
  const item = (k: string, t: string) => h("span", { class: "key" }, h("b", { class: k }), t);
  return [
    item("workload", "workload (sidecar)"),
    item("ambient", "ambient workload (ztunnel, no sidecar)"),
    item("waypoint", "waypoint"),
    item("gateway", "gateway"),
    item("service", "Kubernetes Service"),
    item("external", "ServiceEntry host (registered)"),
    item("unregistered", "unregistered (PassthroughCluster)"),
    item("blocked", "blocked (BlackHoleCluster / block_all)"),
  ];
}

function legend(): HTMLElement[] {
  const item = (v: string, t: string) => h("span", { class: "key" }, h("i", { style: `background: var(${v})` }), t);
  return [
    item("--edge", "ok"),
    item("--v-app", "application / >0.1 % 5xx"),
    item("--v-proxy", "proxy / >5 % 5xx"),
    item("--v-network", "network"),
    item("--v-node", "node pressure"),
    item("--v-ok", "healthy (diagnosed)"),
  ];
}

// meshtune dashboard: one page, hash-routed (#/graph, #/workloads, #/workload/NS/NAME, #/nodes,
// #/report). Data is embedded (the CLI's self-contained HTML report) or fetched from the
// controller's /api/dashboard with a bearer token the user pastes (the same TokenReview +
// SubjectAccessReview as /recommendations); no network access otherwise, no CDN.
import "./style.css";
import type { DashboardData } from "../dashboard-data.js";
import { h, fmtTime } from "./dom.js";
import { graphView, type GraphHandle } from "./graph-view.js";
import { workloadView } from "./workload-view.js";
import { nodesView, reportView, workloadsView } from "./tables-view.js";

declare global {
  interface Window {
    __meshtune?: { layoutMs: number; renderMs: number; nodes: number; edges: number; route: string };
  }
}

const state = { ns: "", q: "" };
let data: DashboardData;
let graph: GraphHandle | null = null;
const main = h("main", { id: "main", tabindex: -1 });

async function load(): Promise<DashboardData | null> {
  const embedded = document.getElementById("meshtune-data");
  if (embedded?.textContent?.trim()) return JSON.parse(embedded.textContent) as DashboardData;
  const token = sessionStorage.getItem("meshtune-token");
  const r = await fetch("../api/dashboard", { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (r.status === 401 || r.status === 403) {
    login(`${r.status}: ${(await r.text()).trim()}`);
    return null;
  }
  if (!r.ok) throw new Error(`/api/dashboard: ${r.status} ${await r.text()}`);
  return (await r.json()) as DashboardData;
}

function login(why: string): void {
  const input = h("input", { type: "password", id: "token", autocomplete: "off", "aria-describedby": "token-help" });
  document.body.replaceChildren(
    h(
      "main",
      { class: "login" },
      h("h1", {}, "meshtune"),
      h(
        "p",
        { id: "token-help" },
        `The dashboard reads the learned dependency map, so it needs a reader (${why}). Paste a token of an identity bound to the meshtune-reader ClusterRole, e.g. kubectl create token meshtune-viewer -n meshtune-system.`,
      ),
      h(
        "form",
        {
          onsubmit: (e: Event) => {
            e.preventDefault();
            sessionStorage.setItem("meshtune-token", input.value.trim());
            location.reload();
          },
        },
        h("label", { for: "token" }, "Bearer token "),
        input,
        h("button", { type: "submit" }, "Open"),
      ),
    ),
  );
  input.focus();
}

function header(): HTMLElement {
  const nsSel = h(
    "select",
    {
      id: "ns",
      "aria-label": "Filter by namespace",
      onchange: (e: Event) => {
        state.ns = (e.target as HTMLSelectElement).value;
        render();
      },
    },
    h("option", { value: "" }, "all namespaces"),
    ...data.namespaces.map((n) => h("option", { value: n }, n)),
  );
  const search = h("input", {
    id: "search",
    type: "search",
    placeholder: "search workloads (/)",
    "aria-label": "Search workloads and hosts",
    oninput: (e: Event) => {
      state.q = (e.target as HTMLInputElement).value;
      if (graph && route()[0] === "graph") graph.filter(state.ns, state.q);
      else render();
    },
  });
  const link = (r: string, t: string) => h("a", { href: `#/${r}`, "data-route": r }, t);
  return h(
    "header",
    {},
    h("h1", {}, "meshtune"),
    h(
      "nav",
      { "aria-label": "Views" },
      link("graph", "Graph"),
      link("workloads", "Workloads"),
      link("nodes", "Nodes"),
      link("report", "Report"),
    ),
    nsSel,
    search,
    h(
      "span",
      { class: "sub" },
      `${data.source === "controller" ? `controller (${data.mode ?? "?"})` : "offline report"} · ${fmtTime(data.generatedAtMs)} · ${data.workloads.length} workloads`,
    ),
  );
}

const route = (): string[] => (location.hash.replace(/^#\/?/, "") || "graph").split("/");

function render(): void {
  const t0 = performance.now();
  const [view, ...rest] = route();
  graph?.destroy();
  graph = null;
  main.replaceChildren();
  document
    .querySelectorAll("nav a")
    .forEach((a) => a.toggleAttribute("aria-current", a.getAttribute("data-route") === view));
  if (view === "workload") {
    const w = data.workloads.find((x) => x.id === rest.join("/"));
    if (!w) main.append(h("p", { role: "alert" }, `No workload ${rest.join("/")}.`));
    else {
      workloadView(main, data, w);
      (main.querySelector("#wl-title") as HTMLElement | null)?.focus();
    }
  } else if (view === "workloads") workloadsView(main, data, state.ns, state.q);
  else if (view === "nodes") nodesView(main, data);
  else if (view === "report") reportView(main, data);
  else {
    graph = graphView(main, data, (id) => {
      location.hash = `#/workload/${id}`;
    });
    graph.filter(state.ns, state.q);
  }
  window.__meshtune = {
    layoutMs: graph?.layoutMs ?? 0,
    renderMs: performance.now() - t0,
    nodes: data.graph.nodes.length,
    edges: data.graph.edges.length,
    route: view,
  };
}

async function boot(): Promise<void> {
  let d: DashboardData | null;
  try {
    d = await load();
  } catch (e) {
    document.body.replaceChildren(h("p", { role: "alert" }, `meshtune: ${(e as Error).message}`));
    return;
  }
  if (!d) return;
  data = d;
  document.body.replaceChildren(h("a", { href: "#main", class: "skip" }, "Skip to content"), header(), main);
  window.addEventListener("hashchange", render);
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && document.activeElement?.tagName !== "INPUT") {
      e.preventDefault();
      (document.getElementById("search") as HTMLInputElement).focus();
    }
  });
  render();
}

void boot();

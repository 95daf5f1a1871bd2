// What a read (/recommendations, /api/dashboard) may materialise. The graph can hold 200,000
// edges (model/graph.ts DEFAULT_LIMITS); building tuning, savings and a dashboard over all of
// them in one request does not fit the controller's 320 MB heap (issue 23: one read after a
// flood killed it). A read works on a view: the busiest workloads up to READ_BOUNDS, sharing the
// graph's nodes (nothing is copied), and says what it left out. Lists are paged.
import { Graph, type WorkloadNode } from "../model/graph.js";

export const READ_BOUNDS = { maxEdges: 20_000, maxWorkloads: 2_000, pageSize: 200, maxPageSize: 1_000 };

export interface Truncation {
  workloads: { shown: number; total: number };
  edges: { shown: number; total: number };
  reason: string;
}

const traffic = (n: WorkloadNode) => {
  let c = 0;
  for (const e of n.edges.values()) c += e.count;
  for (const u of n.unknown.values()) c += u.count;
  return c;
};

/** The graph itself when within bounds, else its busiest workloads up to them. */
export function boundedGraph(g: Graph, b = READ_BOUNDS): { graph: Graph; truncated: Truncation | null } {
  if (g.size <= b.maxEdges && g.nodes.size <= b.maxWorkloads) return { graph: g, truncated: null };
  const view = new Graph(g.limits);
  let edges = 0;
  for (const n of [...g.nodes.values()].sort((a, b2) => traffic(b2) - traffic(a))) {
    const held = n.edges.size + n.unknown.size;
    if (view.nodes.size >= b.maxWorkloads || edges + held > b.maxEdges) continue;
    view.nodes.set(n.key, n);
    edges += held;
  }
  view.size = edges;
  return {
    graph: view,
    truncated: {
      workloads: { shown: view.nodes.size, total: g.nodes.size },
      edges: { shown: edges, total: g.size },
      reason: `reads cover the busiest workloads up to ${b.maxWorkloads} workloads / ${b.maxEdges} edges`,
    },
  };
}

/** One page of `items` sorted by key: at most `limit` after the key `after` (exclusive). */
export function page<T>(
  items: [string, T][],
  limitParam: string | null,
  after: string | null,
  b = READ_BOUNDS,
): { items: [string, T][]; continue: string | null; total: number; limit: number } | string {
  const limit = limitParam === null ? b.pageSize : Number(limitParam);
  if (!Number.isInteger(limit) || limit < 1 || limit > b.maxPageSize) return `limit must be 1-${b.maxPageSize}`;
  const sorted = items.sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0));
  const start = after === null ? 0 : sorted.findIndex(([k]) => k > after);
  const from = start < 0 ? sorted.length : start;
  const out = sorted.slice(from, from + limit);
  return {
    items: out,
    continue: from + limit < sorted.length ? out[out.length - 1][0] : null,
    total: sorted.length,
    limit,
  };
}

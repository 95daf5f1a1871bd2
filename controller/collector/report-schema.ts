// Filter → collector reports v1 and v2 (ARCHITECTURE.md), validated with JSON Schema (ajv). v2 adds
// per-edge `bytes` (TCP stream bytes; HTTP request/response sizes), `upstream` (upstream-time
// histogram), `methods` (idempotent/other), and `route` on unknown destinations ("block_all": a
// request Istio's REGISTRY_ONLY catch-all refused).
// Limits make hostile reports cheap to reject: bounded arrays, strings and numbers.
import { Ajv, type ValidateFunction } from "ajv";
import { BUCKETS, BOUNDS_ID } from "../model/histogram.js";

export const MAX_REPORT_BYTES = 1 << 20;
export const MAX_EDGES = 5_000;

const str = (max = 512) => ({ type: "string", maxLength: max });
const count = { type: "integer", minimum: 0, maximum: 1e12 };
const epochMs = { type: "integer", minimum: 0, maximum: 1e13 };

const histogram = {
  type: "object",
  required: ["bounds", "buckets"],
  properties: {
    bounds: { const: BOUNDS_ID },
    buckets: { type: "array", minItems: BUCKETS, maxItems: BUCKETS, items: count },
    sumUs: count,
  },
} as const;

export const reportSchema = {
  type: "object",
  required: ["v", "proxy", "window", "edges"],
  properties: {
    v: { enum: [1, 2] },
    proxy: {
      type: "object",
      required: ["workload", "namespace"],
      properties: {
        workload: { type: "string", minLength: 1, maxLength: 253, pattern: "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" },
        namespace: { type: "string", minLength: 1, maxLength: 63, pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" },
        pod: str(253),
        node: str(253),
        mesh: str(253),
      },
    },
    window: {
      type: "object",
      required: ["startMs", "endMs"],
      properties: { startMs: epochMs, endMs: epochMs },
    },
    edges: {
      type: "array",
      maxItems: MAX_EDGES,
      items: {
        type: "object",
        required: ["dir", "cluster", "count"],
        properties: {
          dir: { enum: ["outbound", "inbound"] },
          cluster: str(),
          authority: str(),
          proto: str(32),
          count,
          err4xx: count,
          err5xx: count,
          flagged: count,
          bytes: { type: "object", properties: { tx: count, rx: count } },
          latency: histogram,
          upstream: histogram,
          methods: { type: "object", properties: { idempotent: count, other: count } },
        },
      },
    },
    unknown: {
      type: "array",
      maxItems: 1_000,
      items: {
        type: "object",
        required: ["cluster", "dst", "count"],
        properties: {
          cluster: { enum: ["PassthroughCluster", "BlackHoleCluster"] },
          dst: str(64),
          authority: str(),
          sni: str(),
          route: { enum: ["block_all"] },
          count,
        },
      },
    },
    dropped: { type: "object", properties: { edges: count, reports: count } },
  },
} as const;

export interface Histogram {
  bounds: string;
  buckets: number[];
  sumUs?: number;
}

export interface ReportV1 {
  v: 1 | 2;
  proxy: { workload: string; namespace: string; pod?: string; node?: string; mesh?: string };
  window: { startMs: number; endMs: number };
  edges: {
    dir: "outbound" | "inbound";
    cluster: string;
    authority?: string;
    proto?: string;
    count: number;
    err4xx?: number;
    err5xx?: number;
    flagged?: number;
    bytes?: { tx?: number; rx?: number };
    latency?: Histogram;
    upstream?: Histogram;
    methods?: { idempotent?: number; other?: number };
  }[];
  unknown?: {
    cluster: "PassthroughCluster" | "BlackHoleCluster";
    dst: string;
    authority?: string;
    sni?: string;
    route?: "block_all";
    count: number;
  }[];
  dropped?: { edges?: number; reports?: number };
}

// Compiled on first use, not at load: every CLI command imports this module, and compiling the
// schemas cost ~50 ms of each start (measured), while only the collector and agent validate.
let ajvInstance: Ajv | null = null;
const ajv = () => (ajvInstance ??= new Ajv({ allErrors: false, strict: true, allowUnionTypes: true }));

/** A validator for one report schema: the report, or the first error as "/path message". */
export function reportValidator<T>(
  schema: object,
): (v: unknown) => { ok: true; report: T } | { ok: false; detail: string } {
  let check: ValidateFunction | null = null;
  return (v) => {
    check ??= ajv().compile(schema);
    if (check(v)) return { ok: true, report: v as T };
    const e = check.errors?.[0];
    return { ok: false, detail: `${e?.instancePath || "/"} ${e?.message ?? "invalid"}` };
  };
}
let check: ValidateFunction | null = null;

/** Reason a parsed value is not a valid v1 report ("" when valid), as a short reason code + detail. */
export function validateReport(
  v: unknown,
): { ok: true; report: ReportV1 } | { ok: false; reason: string; detail: string } {
  if (v && typeof v === "object" && "v" in v && (v as { v: unknown }).v !== 1 && (v as { v: unknown }).v !== 2)
    return {
      ok: false,
      reason: "version",
      detail: `unsupported report version ${JSON.stringify((v as { v: unknown }).v)} (want 1 or 2)`,
    };
  check ??= ajv().compile(reportSchema);
  if (check(v)) return { ok: true, report: v as unknown as ReportV1 };
  const e = check.errors?.[0];
  return { ok: false, reason: "schema", detail: `${e?.instancePath || "/"} ${e?.message ?? "invalid"}` };
}

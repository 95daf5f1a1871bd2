// Fallback → collector reports (ARCHITECTURE.md "Reports": kind "fallback"): what the fallback
// forwarded for which caller. Accepted only from the fallback's own identity; each caller is
// resolved by the controller against its pod informer (pod address, else namespace + service
// account), never taken on the fallback's word alone.
import { reportValidator } from "./report-schema.js";

const str = (max: number, pattern?: string) => ({ type: "string", maxLength: max, ...(pattern ? { pattern } : {}) });
export const fallbackReportSchema = {
  type: "object",
  required: ["v", "kind", "edges"],
  properties: {
    v: { const: 2 },
    kind: { const: "fallback" },
    edges: {
      type: "array",
      maxItems: 1000,
      items: {
        type: "object",
        required: ["caller", "host", "port", "proto", "count"],
        properties: {
          caller: {
            type: "object",
            properties: {
              namespace: str(63, "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
              serviceAccount: str(253, "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
              podIp: str(45, "^[0-9a-fA-F.:]+$"),
            },
          },
          host: str(253),
          port: { type: "integer", minimum: 1, maximum: 65535 },
          proto: { enum: ["HTTP", "TLS"] },
          count: { type: "integer", minimum: 1, maximum: 1e9 },
        },
      },
    },
  },
} as const;

export interface FallbackReport {
  v: 2;
  kind: "fallback";
  edges: {
    caller: { namespace?: string; serviceAccount?: string; podIp?: string };
    host: string;
    port: number;
    proto: "HTTP" | "TLS";
    count: number;
  }[];
}

export const validateFallbackReport = reportValidator<FallbackReport>(fallbackReportSchema);

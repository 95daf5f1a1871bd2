// Node agent → collector reports (ARCHITECTURE.md "Reports": kind "agent"): the original
// destinations the eBPF capture redirected, per pod, since the agent's last accepted report.
// Accepted only from the agent's own identity; each pod is resolved by the controller against
// its pod informer (namespace/name, and the node the agent names), never taken on the agent's
// word alone. These connect-time edges are what learns raw TCP, headless and ServiceEntry-by-IP
// dependencies that no filter saw.
import { reportValidator } from "./report-schema.js";

const name = { type: "string", maxLength: 253, pattern: "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" };
export const agentReportSchema = {
  type: "object",
  required: ["v", "kind", "node", "pods"],
  properties: {
    v: { const: 2 },
    kind: { const: "agent" },
    node: name,
    pods: {
      type: "array", maxItems: 1000,
      items: {
        type: "object", required: ["namespace", "name", "edges"],
        properties: {
          namespace: { type: "string", maxLength: 63, pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" }, name,
          edges: {
            type: "array", maxItems: 1000,
            items: {
              type: "object", required: ["dst", "count"],
              properties: {
                dst: { type: "string", maxLength: 64, pattern: "^(\\d{1,3}(\\.\\d{1,3}){3}|\\[[0-9a-fA-F:.]+\\]):\\d{1,5}$" },
                count: { type: "integer", minimum: 1, maximum: 1e12 },
              },
            },
          },
        },
      },
    },
    counters: { type: "object", maxProperties: 64, additionalProperties: { type: "integer", minimum: 0 } },
  },
} as const;

export interface AgentReport {
  v: 2;
  kind: "agent";
  node: string;
  pods: { namespace: string; name: string; edges: { dst: string; count: number }[] }[];
  counters?: Record<string, number>;
}

export const validateAgentReport = reportValidator<AgentReport>(agentReportSchema);

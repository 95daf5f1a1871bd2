// Node agent → collector reports (ARCHITECTURE.md "Reports": kind "agent"): the original
// destinations the eBPF capture redirected, per pod, since the agent's last accepted report.
// Accepted only from the agent's own identity; each pod is resolved by the controller against
// its pod informer (namespace/name, and the node the agent names), never taken on the agent's
// word alone. These connect-time edges are what learns raw TCP, headless and ServiceEntry-by-IP
// dependencies that no filter saw. `kernel` adds per-pod TCP signals and cgroup pressure (diagnose).
import { reportValidator } from "./report-schema.js";
import { TS_SLOTS, type KernelSection } from "../agent/kernel-signals.js";
import { PRESSURE_KEYS } from "../agent/pod-pressure.js";

const name = { type: "string", maxLength: 253, pattern: "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" };
const n = { type: "integer", minimum: 0, maximum: 1e15 };
const ip = { type: "string", maxLength: 45, pattern: "^[0-9a-fA-F:.]+$" };
const log2Hist = { type: "array", minItems: TS_SLOTS, maxItems: TS_SLOTS, items: n };
/** Kernel signals per pod over the report's window (controller/agent/kernel-signals.ts, bpf/tcpstats.h). */
const kernel = {
  type: "object",
  required: ["windowMs", "pods"],
  properties: {
    windowMs: n,
    endMs: n, // the agent's clock at the window's end: only offline (`diagnose --kernel`) uses it
    pods: {
      type: "array",
      maxItems: 1000,
      items: {
        type: "object",
        required: ["namespace", "name", "ips", "pressure", "remotes"],
        properties: {
          namespace: { type: "string", maxLength: 63, pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" },
          name,
          ips: { type: "array", maxItems: 8, items: ip },
          pressure: {
            type: "object",
            required: PRESSURE_KEYS,
            additionalProperties: false,
            properties: Object.fromEntries(PRESSURE_KEYS.map((k) => [k, n])),
          },
          remotes: {
            type: "array",
            maxItems: 500,
            items: {
              type: "object",
              required: [
                "dir",
                "ip",
                "port",
                "rttSamples",
                "rttSumUs",
                "rttMinUs",
                "rttHist",
                "retrans",
                "connects",
                "connectFail",
                "connectSumUs",
                "connectHist",
                "accepts",
              ],
              properties: {
                dir: { enum: ["out", "in"] },
                ip,
                port: { type: "integer", minimum: 0, maximum: 65535 },
                rttSamples: n,
                rttSumUs: n,
                rttMinUs: n,
                rttHist: log2Hist,
                retrans: n,
                connects: n,
                connectFail: n,
                connectSumUs: n,
                connectHist: log2Hist,
                accepts: n,
              },
            },
          },
        },
      },
    },
  },
};
export const agentReportSchema = {
  type: "object",
  required: ["v", "kind", "node", "pods"],
  properties: {
    v: { const: 2 },
    kind: { const: "agent" },
    node: name,
    pods: {
      type: "array",
      maxItems: 1000,
      items: {
        type: "object",
        required: ["namespace", "name", "edges"],
        properties: {
          namespace: { type: "string", maxLength: 63, pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" },
          name,
          edges: {
            type: "array",
            maxItems: 1000,
            items: {
              type: "object",
              required: ["dst", "count"],
              properties: {
                dst: {
                  type: "string",
                  maxLength: 64,
                  pattern: "^(\\d{1,3}(\\.\\d{1,3}){3}|\\[[0-9a-fA-F:.]+\\]):\\d{1,5}$",
                },
                count: { type: "integer", minimum: 1, maximum: 1e12 },
              },
            },
          },
        },
      },
    },
    counters: { type: "object", maxProperties: 64, additionalProperties: { type: "integer", minimum: 0 } },
    kernel,
  },
} as const;

export interface AgentReport {
  v: 2;
  kind: "agent";
  node: string;
  pods: { namespace: string; name: string; edges: { dst: string; count: number }[] }[];
  counters?: Record<string, number>;
  kernel?: KernelSection;
}

export const validateAgentReport = reportValidator<AgentReport>(agentReportSchema);

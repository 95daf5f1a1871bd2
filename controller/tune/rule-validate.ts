// Every emitted VirtualService/DestinationRule is checked against Istio's CRD schema (the
// openAPIV3Schema of istio/istio manifests/charts/base/files/crd-all.gen.yaml, 1.29.2, as
// generated into @kubernetes-models/istio) and against the semantic rules of Istio's validation
// webhook the schema cannot express (pkg/config/validation/validation.go validateHTTPRetry,
// validateOutlierDetection; agent.ValidateDuration: ≥ 1 ms, whole milliseconds; the CRD's CEL
// rule "must be a valid duration greater than 1ms").
import { VirtualService } from "@kubernetes-models/istio/networking.istio.io/v1/VirtualService";
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import { parseDur } from "./duration.js";

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

// validation.go supportedRetryOnPolicies (x-envoy-retry-on and x-envoy-retry-grpc-on names).
const RETRY_ON = new Set([
  "5xx",
  "gateway-error",
  "reset",
  "reset-before-request",
  "connect-failure",
  "retriable-4xx",
  "refused-stream",
  "retriable-status-codes",
  "retriable-headers",
  "envoy-ratelimited",
  "http3-post-connect-failure",
  "cancelled",
  "deadline-exceeded",
  "internal",
  "resource-exhausted",
  "unavailable",
]);

function duration(field: string, v: unknown, errs: string[]): number {
  if (v === undefined) return NaN;
  const ms = parseDur(String(v));
  if (!(ms >= 1)) errs.push(`${field} ${v}: must be a valid duration greater than 1ms`);
  else if (Math.abs(ms - Math.round(ms)) > 1e-9)
    errs.push(`${field} ${v}: only durations to ms precision are supported`);
  return ms;
}

export function validateRule(o: Obj): string[] {
  const errs: string[] = [];
  try {
    (o.kind === "VirtualService" ? new VirtualService(o as never) : new DestinationRule(o as never)).validate();
  } catch (e) {
    errs.push(`schema: ${(e as Error).message.split("\n")[0]}`);
  }
  if (o.kind === "VirtualService") {
    for (const [i, h] of (o.spec?.http ?? []).entries()) {
      const t = duration(`http[${i}].timeout`, h.timeout, errs);
      const r = h.retries;
      if (!r) continue;
      if (r.attempts < 0) errs.push(`http[${i}].retries.attempts cannot be negative`);
      if (r.attempts === 0 && (r.perTryTimeout || r.retryOn))
        errs.push(`http[${i}].retries: http retry policy configured when attempts are set to 0 (disabled)`);
      const pt = duration(`http[${i}].retries.perTryTimeout`, r.perTryTimeout, errs);
      for (const p of String(r.retryOn ?? "")
        .split(",")
        .filter(Boolean))
        if (!RETRY_ON.has(p) && !/^[1-5]\d\d$/.test(p)) errs.push(`"${p}" is not a valid retryOn policy`);
      if (pt > 0 && t > 0 && pt > t)
        errs.push(`http[${i}]: perTryTimeout ${r.perTryTimeout} exceeds the route timeout ${h.timeout}`);
    }
  } else {
    const od = o.spec?.trafficPolicy?.outlierDetection;
    if (od) {
      duration("outlierDetection.interval", od.interval, errs);
      duration("outlierDetection.baseEjectionTime", od.baseEjectionTime, errs);
      for (const k of ["maxEjectionPercent", "minHealthPercent"])
        if (od[k] !== undefined && (od[k] < 0 || od[k] > 100))
          errs.push(`outlierDetection.${k} ${od[k]}: percentage must be in [0, 100]`);
    }
  }
  return errs;
}

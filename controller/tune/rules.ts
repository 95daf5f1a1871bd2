// Mesh rules along the call chain, from observed traffic (tune/traffic.ts):
//  - timeout per service: the request-time tail with headroom (max of 2×p99 and 1.5×p99.9),
//    raised so the chain is consistent: a service's per-try time covers its callees' whole
//    timeouts (their retries included), so a caller never gives up while its callee is still
//    legitimately retrying downstream.
//  - retries: Envoy retries only what retryOn names (router filter x-envoy-retry-on). After the
//    request may have reached the app, only idempotent methods (RFC 9110 9.2.2) are retried;
//    services that also see other methods are retried only when the request never left
//    (connect-failure, refused-stream). Bounded by Envoy's retry budget (circuit_breaker.proto
//    RetryBudget: defaults 20 % / 3 concurrent), which Istio exposes as
//    DestinationRule trafficPolicy.retryBudget from 1.27 (absent from the 1.25/1.26 CRDs);
//    older meshes get connectionPool.http.maxRetries instead.
//  - outlier detection only with ≥ 2 endpoints, its 5xx threshold above what the observed error
//    rate produces by chance, never ejecting the last endpoint.
//  - connection-pool limits at 10× the concurrency Little's law gives (L = λ·W) for the mean rate
//    over the window and the p99 request time: counts carry no per-second peaks, so this is a
//    stated estimate, not an observed peak.
//  - minimum evidence: timeouts and pools need ≥ minRequests over ≥ minWindowS of observation, and
//    a timeout is never below timeoutFloorMs (a tail measured over minutes misses rare slow paths).
//  - where: only Kubernetes services in namespaces with meshed workloads of the input, never the
//    control plane's; and no mesh VirtualService for a host only gateways call (a VirtualService
//    without `gateways:` binds to `mesh` only, so it would not touch gateway traffic).
import { hostNamespace } from "../model/cluster-name.js";
import { quantileInterpUs } from "../model/histogram.js";
import { isHttp, type HostTraffic, type Traffic } from "./traffic.js";
import { dur, niceCeil } from "./duration.js";

export interface Why {
  field: string;
  value: unknown;
  why: string;
}
export interface RuleRec {
  host: string;
  namespace: string;
  virtualService: Record<string, any> | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  destinationRule: Record<string, any> | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  rationale: Why[];
  skipped: string[];
}
export interface RuleOptions {
  domain: string;
  istioVersion: [number, number];
  /** Fewer requests than this: no timeout or pool limits (the tail is not known). */
  minRequests: number;
  /** Hosts a user VirtualService / DestinationRule already covers: never overridden. */
  userVirtualServices: Set<string>;
  userDestinationRules: Set<string>;
  endpoints: (host: string) => number | null;
  /** Observed duration below this (s): no timeout or pool limits. */
  minWindowS?: number;
  /** No recommended timeout is shorter than this. */
  timeoutFloorMs?: number;
  /** Namespaces meshtune may write rules into (meshed workloads seen); null: any but the control plane's. */
  meshedNamespaces?: Set<string> | null;
  /** Namespaces that belong to the control plane (default: istio-system). */
  controlPlaneNamespaces?: Set<string>;
}
export const MIN_WINDOW_S = 600;
export const TIMEOUT_FLOOR_MS = 1000;

const RETRY_ALL = "connect-failure,refused-stream,unavailable,cancelled,reset,503";
const RETRY_SAFE = "connect-failure,refused-stream";
const RETRIES = 2; // Istio's default attempts (meshConfig defaultHttpRetryPolicy)

interface Plan {
  host: string;
  t: HostTraffic;
  baseMs: number | null;
  p99Ms: number;
  p999Ms: number;
  retry: "all" | "safe" | null;
  perTryMs: number;
  totalMs: number;
  raisedBy: string | null;
}

function retryClass(t: HostTraffic): "all" | "safe" | null {
  if (!isHttp(t.proto) || t.idempotent + t.other === 0) return null;
  return t.other === 0 ? "all" : "safe";
}

export function planTimeouts(tr: Traffic, o: RuleOptions): Map<string, Plan> {
  const plans = new Map<string, Plan>();
  const visiting = new Set<string>();
  const callees = (host: string): string[] => {
    const out = new Set<string>();
    for (const w of tr.servers.get(host) ?? [])
      for (const h of tr.hosts.values()) if (h.callers.has(w) && h.host !== host) out.add(h.host);
    return [...out];
  };
  const plan = (host: string): Plan | null => {
    const done = plans.get(host);
    if (done) return done;
    const t = tr.hosts.get(host);
    if (!t || visiting.has(host)) return null; // a cycle: the callee on the back edge is planned on its own
    visiting.add(host);
    const p99Ms = quantileInterpUs(t.buckets, 0.99) / 1000,
      p999Ms = quantileInterpUs(t.buckets, 0.999) / 1000;
    const enough = t.count >= o.minRequests && tr.observedS >= (o.minWindowS ?? MIN_WINDOW_S);
    const baseMs =
      enough && isHttp(t.proto)
        ? niceCeil(Math.max(2 * p99Ms, 1.5 * p999Ms, o.timeoutFloorMs ?? TIMEOUT_FLOOR_MS))
        : null;
    let perTryMs = baseMs ?? 0,
      raisedBy: string | null = null;
    for (const c of callees(host)) {
      const cp = plan(c);
      if (cp && cp.totalMs > 0 && cp.totalMs * 1.1 > perTryMs) {
        perTryMs = niceCeil(cp.totalMs * 1.1);
        raisedBy = c;
      }
    }
    const retry = retryClass(t);
    const totalMs = perTryMs === 0 ? 0 : retry === "all" ? perTryMs * (1 + RETRIES) : perTryMs;
    const p: Plan = { host, t, baseMs, p99Ms, p999Ms, retry, perTryMs, totalMs, raisedBy };
    visiting.delete(host);
    plans.set(host, p);
    return p;
  };
  for (const h of tr.hosts.keys()) plan(h);
  return plans;
}

const ms = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)} ms`;
const shortName = (host: string) => host.split(".")[0];

export function recommendRules(tr: Traffic, o: RuleOptions): RuleRec[] {
  const out: RuleRec[] = [];
  const budget = o.istioVersion[0] > 1 || o.istioVersion[1] >= 27;
  const controlPlane = o.controlPlaneNamespaces ?? new Set(["istio-system"]);
  const minWindowS = o.minWindowS ?? MIN_WINDOW_S;
  for (const p of planTimeouts(tr, o).values()) {
    const ns = hostNamespace(p.host, o.domain);
    if (!ns) continue; // only Kubernetes services: external hosts belong to their ServiceEntry owners
    const t = p.t,
      skipped: string[] = [];
    if (controlPlane.has(ns) || (o.meshedNamespaces && !o.meshedNamespaces.has(ns))) {
      skipped.push(
        controlPlane.has(ns)
          ? `all rules: ${ns} is the control plane's namespace; meshtune writes no objects there`
          : `all rules: ${ns} has no meshed workload in the input; meshtune writes only where it sees meshed workloads`,
      );
      out.push({ host: p.host, namespace: ns, virtualService: null, destinationRule: null, rationale: [], skipped });
      continue;
    }
    const rate = t.count / tr.windowS,
      errPct = t.count ? (100 * t.err5xx) / t.count : 0;
    const evidence = `${t.count} requests in ${Math.round(tr.observedS)} s from ${t.callers.size} caller(s); p99 ${ms(p.p99Ms)}, p99.9 ${ms(p.p999Ms)}; 5xx ${errPct.toFixed(2)} %`;
    const thin =
      t.count < o.minRequests
        ? `${t.count} requests < ${o.minRequests}`
        : tr.observedS < minWindowS
          ? `${Math.round(tr.observedS)} s observed < ${minWindowS} s`
          : null;
    // The VirtualService: its reasons are kept apart and listed only if it is emitted.
    const route: Record<string, unknown> = { route: [{ destination: { host: p.host } }] };
    const vsWhy: Why[] = [];
    if (p.totalMs > 0) {
      route.timeout = dur(p.totalMs);
      vsWhy.push({
        field: "http[0].timeout",
        value: route.timeout,
        why: p.raisedBy
          ? `raised above this service's own tail (${p.baseMs !== null ? ms(p.baseMs) : "unknown"}) to cover its callee ${p.raisedBy}'s whole timeout with its retries (+10 %); ${evidence}`
          : `max(2×p99, 1.5×p99.9, floor ${ms(o.timeoutFloorMs ?? TIMEOUT_FLOOR_MS)}) rounded up${p.retry === "all" ? `, × ${1 + RETRIES} tries` : ""}; ${evidence}`,
      });
    } else
      skipped.push(
        !isHttp(t.proto)
          ? `timeout: ${t.proto} traffic (route timeouts are HTTP only)`
          : `timeout: too little evidence (${thin}), the tail is not known yet`,
      );
    if (p.retry === "all") {
      route.retries = {
        attempts: RETRIES,
        retryOn: RETRY_ALL,
        ...(p.perTryMs ? { perTryTimeout: dur(p.perTryMs) } : {}),
      };
      vsWhy.push({
        field: "http[0].retries",
        value: route.retries,
        why: `every observed request used an idempotent method (${t.idempotent} idempotent, 0 other): safe to retry after the request reached the app`,
      });
    } else if (p.retry === "safe") {
      route.retries = { attempts: RETRIES, retryOn: RETRY_SAFE };
      vsWhy.push({
        field: "http[0].retries",
        value: route.retries,
        why: `${t.other} non-idempotent request(s) seen: retried only when the request never reached the app`,
      });
    } else if (isHttp(t.proto))
      skipped.push("retries: methods not observed (no report v2 or access-log method); Istio's default policy stays");

    const why: Why[] = [];
    let vs = null;
    const meshCallers = t.callers.size - t.otherCallers.size;
    const others = [...t.otherCallers].map(([k, kind]) => `${k} (${kind})`).join(", ");
    if (!route.timeout && !route.retries) {
      /* nothing to route */
    } else if (o.userVirtualServices.has(p.host))
      skipped.push(`VirtualService: a user VirtualService already routes ${p.host}; timeout and retries left to it`);
    else if (meshCallers === 0)
      skipped.push(
        `VirtualService: no sidecar calls ${p.host}, only ${others}; a VirtualService without gateways: binds to sidecars (and waypoints) only, so set timeout and retries on the gateway's own VirtualService or the service's waypoint`,
      );
    else {
      vs = {
        apiVersion: "networking.istio.io/v1",
        kind: "VirtualService",
        metadata: {
          name: `meshtune-${shortName(p.host)}`,
          namespace: ns,
          labels: { "app.kubernetes.io/managed-by": "meshtune" },
        },
        spec: { hosts: [p.host], http: [route] },
      };
      why.push(...vsWhy);
      if (t.otherCallers.size)
        skipped.push(
          `VirtualService: applies to the ${meshCallers} sidecar caller(s) only; ${others} keep their own routes (a gateway's VirtualService, or a waypoint for ambient callers)`,
        );
    }

    const policy: Record<string, unknown> = {};
    const drWhy: Why[] = [];
    const eps = o.endpoints(p.host);
    if (eps !== null && eps >= 2 && !thin) {
      const r = Math.min(0.99, t.err5xx / t.count);
      // P(k errors in a row | independent errors at rate r) = r^k < 1e-4 per window: chance alone never ejects.
      const k = r > 0 ? Math.min(50, Math.max(5, Math.ceil(Math.log(1e-4) / Math.log(r)))) : 5;
      const maxEject = Math.floor((100 * (eps - 1)) / eps);
      policy.outlierDetection = {
        consecutive5xxErrors: k,
        interval: "10s",
        baseEjectionTime: "30s",
        maxEjectionPercent: Math.min(50, maxEject),
      };
      drWhy.push({
        field: "trafficPolicy.outlierDetection",
        value: policy.outlierDetection,
        why: `${eps} endpoints; observed 5xx rate ${errPct.toFixed(2)} % makes ${k} in a row by chance < 1e-4; at most ${Math.min(50, maxEject)} % ejected so one endpoint always stays`,
      });
    } else
      skipped.push(
        `outlierDetection: ${eps === null ? "endpoint count unknown (give --catalog with Endpoints)" : eps < 2 ? `${eps} endpoint: ejecting it would leave none` : `too little evidence (${thin})`}`,
      );
    if (isHttp(t.proto) && !thin) {
      // Little's law L = λ·W: λ the mean rate over the window, W the request time at p99 (and, for
      // reference, the mean from the histogram's sum). Bursts above the mean rate are invisible in
      // counts, hence the 10× headroom.
      const meanMs = t.count ? t.sumUs / t.count / 1000 : 0;
      const conc = rate * (p.p99Ms / 1000),
        concMean = rate * (meanMs / 1000);
      const lim = Math.max(64, Math.ceil(10 * conc));
      const pool: Record<string, unknown> = { http: { http1MaxPendingRequests: lim, http2MaxRequests: lim } };
      drWhy.push({
        field: "trafficPolicy.connectionPool.http",
        value: pool.http,
        why: `concurrency by Little's law L = λ·W at p99: mean rate ${rate.toFixed(2)}/s × p99 ${ms(p.p99Ms)} = ${conc.toFixed(2)} (at the mean time ${ms(meanMs)}: ${concMean.toFixed(2)}); λ is the mean over ${Math.round(tr.observedS)} s, not a peak, so the limit is 10× L, at least 64`,
      });
      if (route.retries && vs && !budget) {
        (pool.http as Record<string, number>).maxRetries = Math.max(3, Math.ceil(0.2 * lim));
        drWhy.push({
          field: "trafficPolicy.connectionPool.http.maxRetries",
          value: (pool.http as Record<string, number>).maxRetries,
          why: `Istio ${o.istioVersion.join(".")} has no retryBudget (added in 1.27): concurrent retries capped at 20 % of the request limit`,
        });
      }
      policy.connectionPool = pool;
    } else if (isHttp(t.proto)) skipped.push(`connectionPool: too little evidence (${thin})`);
    if (route.retries && vs && budget) {
      policy.retryBudget = { percent: 20, minRetryConcurrency: 3 };
      drWhy.push({
        field: "trafficPolicy.retryBudget",
        value: policy.retryBudget,
        why: "retries on: at most 20 % of active requests may be retries (Envoy's default budget), so retries cannot amplify an overload",
      });
    }
    let dr = null;
    if (o.userDestinationRules.has(p.host)) {
      if (Object.keys(policy).length)
        skipped.push(
          `DestinationRule: a user DestinationRule already covers ${p.host}; ${Object.keys(policy).join(", ")} left to it`,
        );
    } else if (Object.keys(policy).length) {
      dr = {
        apiVersion: "networking.istio.io/v1",
        kind: "DestinationRule",
        metadata: {
          name: `meshtune-${shortName(p.host)}`,
          namespace: ns,
          labels: { "app.kubernetes.io/managed-by": "meshtune" },
        },
        spec: { host: p.host, trafficPolicy: policy },
      };
      why.push(...drWhy);
    }
    out.push({ host: p.host, namespace: ns, virtualService: vs, destinationRule: dr, rationale: why, skipped });
  }
  return out.sort((a, b) => a.host.localeCompare(b.host));
}

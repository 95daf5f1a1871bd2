// Drive the real filter (.wasm built by asc) through the proxy-wasm test host.
import { join } from "node:path";
import { HostBuilder, type ProxyHost } from "../proxywasm/host.js";
import type { PropValue } from "../proxywasm/abi.js";
import { ROOT } from "./cli.js";

export const FILTER_WASM = join(ROOT, "build", "meshtune-filter.wasm");
export const NOOP_WASM = join(ROOT, "build", "noop-filter.wasm");

export const PRODUCTPAGE = {
  WORKLOAD_NAME: "productpage-v1",
  NAMESPACE: "bookinfo",
  NAME: "productpage-v1-6987489c74-6fgz8",
  NODE_NAME: "node-a",
  MESH_ID: "cluster.local",
};

export function filterHost(
  config: object | string = {},
  md: Record<string, string> = PRODUCTPAGE,
  wasm = FILTER_WASM,
): ProxyHost {
  const h = new HostBuilder().wasmFile(wasm).nodeMetadata(md).pluginConfig(config).build();
  h.start();
  return h;
}

/** One request as Envoy would present it at log time. */
export function request(
  cluster: string,
  o: {
    code?: number;
    ms?: number;
    upMs?: number | null;
    upHeaderMs?: number;
    method?: string;
    reqBytes?: number;
    respBytes?: number;
    host?: string;
    proto?: string;
    upstream?: string;
    destination?: string;
    flags?: number;
    grpc?: boolean;
    route?: string;
  } = {},
) {
  const method = o.method ?? (o.grpc ? "POST" : "GET");
  const properties: Record<string, PropValue> = {
    "response.code": o.code ?? 200,
    "response.flags": o.flags ?? 0,
    "request.duration": BigInt(Math.round((o.ms ?? 3) * 1e6)),
    "request.host": o.host ?? "",
    "request.protocol": o.proto ?? "HTTP/1.1",
    "request.method": method,
    "request.total_size": o.reqBytes ?? 240,
    "response.total_size": o.respBytes ?? 610,
  };
  // response.backend_latency: present whenever an upstream answered (context.cc BackendLatency);
  // null models an Envoy without it (then the router's header is the fallback).
  const up = o.upMs === undefined ? (o.ms ?? 3) * 0.8 : o.upMs;
  if (cluster && up !== null) properties["response.backend_latency"] = BigInt(Math.round(up * 1e6));
  if (o.upHeaderMs !== undefined) properties["response.headers.x-envoy-upstream-service-time"] = String(o.upHeaderMs);
  // A local reply (no route to a cluster, or a direct response like Istio's block_all) has no
  // upstream cluster: the attribute is absent, not empty (expr/context.cc XdsWrapper cluster_name).
  if (cluster) properties["xds.cluster_name"] = cluster;
  if (o.route) properties["xds.route_name"] = o.route;
  if (o.upstream) properties["upstream.address"] = o.upstream;
  if (o.destination) properties["destination.address"] = o.destination;
  const ct = o.grpc ? "application/grpc" : "application/json";
  return {
    properties,
    requestHeaders: [
      [":method", method],
      [":path", "/"],
      [":authority", o.host ?? ""],
      ["content-type", ct],
    ] as [string, string][],
    responseHeaders: [
      [":status", String(o.code ?? 200)],
      ["content-type", ct],
    ] as [string, string][],
  };
}

export const bodyOf = (h: ProxyHost, i = -1) => JSON.parse(new TextDecoder().decode(h.callouts.at(i)!.body));

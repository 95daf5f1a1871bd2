// Suggested ServiceEntry for a destination the mesh does not know (Passthrough/BlackHole). The
// host comes from a request's authority or SNI, which the caller wrote: it is used only when it
// passes Istio's host validation (istio/validate.ts fqdnError, after ValidateFQDN); otherwise
// the suggestion names the address alone, so no caller-written text is ever printed as a host.
import type { UnknownDest } from "../model/graph.js";
import { stripPort } from "../model/cluster-name.js";
import { fqdnError } from "../istio/validate.js";

export interface ServiceEntryObj {
  apiVersion: string;
  kind: "ServiceEntry";
  metadata: { name: string; namespace: string };
  spec: {
    hosts: string[];
    addresses?: string[];
    ports: { number: number; name: string; protocol: string }[];
    location: "MESH_EXTERNAL";
    resolution: "DNS" | "NONE";
  };
}

function splitAddr(dst: string): { ip: string; port: number } | null {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(dst);
  return m ? { ip: m[1], port: Number(m[2]) } : null;
}

export function suggestServiceEntry(u: UnknownDest, namespace: string): ServiceEntryObj | null {
  const addr = splitAddr(u.dst);
  if (!addr) return null;
  const given = (stripPort(u.authority) || u.sni).toLowerCase();
  const name = given && !/^[\d.]+$|:/.test(given) && fqdnError(given) ? "" : given;
  const protocol = u.proto === "HTTP" ? "HTTP" : u.proto === "TLS" ? "TLS" : "TCP";
  const isIp = !name || /^[\d.]+$|:/.test(name);
  const host = isIp ? `ip-${addr.ip.replace(/[.:]/g, "-")}.external` : name;
  return {
    apiVersion: "networking.istio.io/v1beta1",
    kind: "ServiceEntry",
    metadata: {
      name: host
        .replace(/[^a-z0-9-]/gi, "-")
        .toLowerCase()
        .slice(0, 63)
        .replace(/-+$/, ""),
      namespace,
    },
    spec: {
      hosts: [host],
      ...(isIp ? { addresses: [addr.ip.includes(":") ? `${addr.ip}/128` : `${addr.ip}/32`] } : {}),
      ports: [{ number: addr.port, name: `${protocol.toLowerCase()}-${addr.port}`, protocol }],
      location: "MESH_EXTERNAL",
      resolution: isIp ? "NONE" : "DNS",
    },
  };
}

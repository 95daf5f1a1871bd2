// Where the fallback sends a request for a destination the caller's Sidecar lacked. The caller's
// egressProxy route keeps the request's Host as the app wrote it (httproute.go
// buildCatchAllVirtualHost: the catch-all route only changes the cluster), so a short name
// ("ratings", "ratings.bookinfo") means what the caller's resolver would make of it
// (istio/hosts.ts requestedFqdn: the pod's search path), never the fallback's own namespace.
// The port is lost with the original destination: the Host's explicit port, else the scheme's
// default when the service has it, else the service's only port.
import { stripPort } from "../model/cluster-name.js";
import { HostIndex, requestedFqdn } from "../istio/hosts.js";

export interface Target {
  host: string;
  port: number;
  registered: boolean;
}

export function resolveTarget(
  name: string,
  callerNs: string | null,
  proto: "HTTP" | "TLS",
  index: HostIndex,
  domain: string,
): Target | string {
  const bare = stripPort(name.trim()).toLowerCase().replace(/\.$/, "");
  if (!bare) return "empty host";
  if (!bare.includes(".") && !callerNs)
    return `short name ${JSON.stringify(bare)} and no caller namespace to resolve it in`;
  const fq = requestedFqdn(bare, callerNs ?? "", domain, index);
  if (!fq) return `${JSON.stringify(bare)} names an address, not a host`;
  const m = /:(\d{1,5})$/.exec(name.trim());
  const explicit = m && !name.trim().startsWith("[") ? Number(m[1]) : null;
  if (explicit !== null && (explicit < 1 || explicit > 65535)) return `port ${explicit} out of range`;
  const ports = index.portsOf(fq);
  const dflt = proto === "HTTP" ? 80 : 443;
  const port = explicit ?? (ports.length === 0 || ports.includes(dflt) ? dflt : ports.length === 1 ? ports[0] : dflt);
  return { host: fq, port, registered: index.has(fq) };
}

// Host names as Istio scopes them: requested authorities resolved to FQDNs the way the caller's
// resolver would, the `namespace/host` import for a host, and a compact, warning-free host list.
import { hostNamespace, stripPort } from "../model/cluster-name.js";
import type { CatalogService } from "../sidecar/catalog.js";

/** Which namespace owns a host, from the catalog (Services by name, ServiceEntries by their namespace). */
export class HostIndex {
  private readonly ns = new Map<string, Set<string>>();
  private readonly exports = new Map<string, { namespace: string; exportTo: string[] }[]>();
  /** "ip:port" and "ip" → host: what a Passthrough/BlackHole record's original destination names. */
  private readonly byAddr = new Map<string, string>();
  private readonly ports = new Map<string, number[]>();
  constructor(services: CatalogService[] = []) {
    for (const s of services) {
      this.ports.set(s.host, [...new Set([...(this.ports.get(s.host) ?? []), ...s.ports.map((p) => p.port)])]);
      for (const a of s.addresses ?? []) {
        const ip = a.toLowerCase();
        if (!this.byAddr.has(ip)) this.byAddr.set(ip, s.host);
        for (const p of s.ports) this.byAddr.set(`${ip}:${p.port}`, s.host);
      }
      let set = this.ns.get(s.host);
      if (!set) this.ns.set(s.host, (set = new Set()));
      set.add(s.namespace);
      const e = this.exports.get(s.host) ?? [];
      e.push({ namespace: s.namespace, exportTo: s.exportTo });
      this.exports.set(s.host, e);
    }
  }
  /**
   * Whether any definition of `host` is visible from namespace `from` (Istio exportTo: empty =
   * mesh default, taken as "*"; "." = own namespace; "~" = none; else namespace names), or null
   * when the catalog does not define the host. Istio's rule: pilot/pkg/model/push_context.go
   * IsServiceVisible (Public, or Private and same namespace, or the namespace listed).
   */
  exportedTo(host: string, from: string): boolean | null {
    const defs = this.exports.get(host);
    if (!defs) return null;
    return defs.some(
      (d) =>
        d.exportTo.length === 0 ||
        d.exportTo.some((x) => x === "*" || x === from || (x === "." && d.namespace === from)),
    );
  }
  has(host: string): boolean {
    return this.ns.has(host);
  }
  /** No catalog at all (offline without --catalog): registration cannot be checked. */
  get empty(): boolean {
    return this.ns.size === 0;
  }
  /** Ports the catalog defines for `host` (every definition), [] when unknown. */
  portsOf(host: string): number[] {
    return this.ports.get(host) ?? [];
  }
  /**
   * The host behind an original destination "ip:port" ("[v6]:port" too): a ClusterIP or a
   * ServiceEntry address with that port, else that address on any port; null when unknown.
   */
  hostOfAddress(dst: string): string | null {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(dst.trim());
    if (!m) return null;
    const ip = m[1].toLowerCase();
    return this.byAddr.get(`${ip}:${m[2]}`) ?? this.byAddr.get(ip) ?? null;
  }
  /** The single namespace that defines `host`, or null (unknown, or defined in several: import with "*"). */
  namespaceOf(host: string): string | null {
    const s = this.ns.get(host);
    return s && s.size === 1 ? [...s][0] : null;
  }
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * The FQDN a requested authority names, as the caller's resolver sees it: Kubernetes pods search
 * `<ns>.svc.<domain> svc.<domain> <domain>` (kubelet's resolv.conf), so "reviews" is
 * reviews.<callerNs>.svc.<domain> and "reviews.other" is reviews.other.svc.<domain> when that
 * service exists. null for IP literals and empty authorities (nothing to import by name).
 */
export function requestedFqdn(authority: string, callerNs: string, domain: string, index: HostIndex): string | null {
  let h = stripPort(authority.trim()).toLowerCase();
  if (h.endsWith(".")) h = h.slice(0, -1);
  if (!h || IPV4.test(h) || h.includes(":")) return null;
  if (!h.includes(".")) return `${h}.${callerNs}.svc.${domain}`;
  if (h.endsWith(".svc")) return `${h}.${domain}`;
  const asService = `${h}.svc.${domain}`;
  if (h.split(".").length === 2 && index.has(asService)) return asService;
  return h;
}

/** The Sidecar import for a host: its own namespace for `*.svc.<domain>`, else the defining namespace, else "*". */
export function importOf(host: string, domain: string, index: HostIndex): string {
  return `${hostNamespace(host, domain) ?? index.namespaceOf(host) ?? "*"}/${host}`;
}

/**
 * Sorted, de-duplicated, and free of what Istio's ValidateSidecar warns about ("duplicated egress
 * host": `ns/x` beside `ns/*`; "`*\/*` host select all resources") or what a wildcard of the same
 * namespace already covers (`ns/a.example.com` beside `ns/*.example.com`).
 */
export function compactHosts(hosts: Iterable<string>): string[] {
  const all = [...new Set(hosts)];
  if (all.includes("*/*")) return ["*/*"];
  const wild = new Map<string, string[]>(); // ns → wildcard suffixes (".example.com"), "" for "*"
  for (const h of all) {
    const [ns, name] = split(h);
    if (name === "*") wild.set(ns, [...(wild.get(ns) ?? []), ""]);
    else if (name.startsWith("*.")) wild.set(ns, [...(wild.get(ns) ?? []), name.slice(1)]);
  }
  return all
    .filter((h) => {
      const [ns, name] = split(h);
      const w = wild.get(ns);
      if (!w || name === "*") return true;
      if (w.includes("")) return false;
      return !w.some((suffix) => name !== `*${suffix}` && name.endsWith(suffix));
    })
    .sort();
}

function split(h: string): [string, string] {
  const i = h.indexOf("/");
  return [h.slice(0, i), h.slice(i + 1)];
}

// Service catalog from `kubectl get svc,serviceentries[,endpoints] -A -o json`:
// what a proxy receives by default (every visible service port) for the savings estimate.
import { parseAllDocuments } from "yaml";
export interface CatalogPort {
  port: number;
  http: boolean;
}
export interface CatalogService {
  namespace: string;
  host: string;
  vip: boolean; // has a cluster IP / addresses (TCP listeners are per VIP)
  ports: CatalogPort[];
  endpoints: number; // per port; from Endpoints when present, else 1 (documented assumption)
  exportTo: string[]; // [] = everywhere
  /** Addresses a connection to this service is made to: ClusterIPs, ServiceEntry addresses (IPs, not CIDRs). */
  addresses?: string[];
  /** A Kubernetes Service's spec.selector: the pods (workloads) behind it. */
  selector?: Record<string, string>;
}

const HTTP_PREFIX = /^(http|http2|grpc|grpc-web)(-|$)/i;

function isHttp(name: string | undefined, protocol: string | undefined, appProtocol: string | undefined): boolean {
  if (appProtocol) return /^(http|http2|grpc|grpc-web|kubernetes\.io\/h2c)$/i.test(appProtocol);
  if (protocol && /^(HTTP|HTTP2|GRPC|GRPC-WEB)$/i.test(protocol)) return true;
  return HTTP_PREFIX.test(name ?? "");
}

interface K8sList {
  items?: unknown[];
}
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Catalog objects from JSON (a List) or YAML (a List, or several documents, each an object or a List). */
export function catalogItems(text: string): Obj[] {
  let docs: unknown[];
  try {
    docs = [JSON.parse(text)];
  } catch {
    try {
      docs = parseAllDocuments(text).map((d) => {
        if (d.errors.length) throw d.errors[0];
        return d.toJS();
      });
    } catch (e) {
      throw new Error(`neither JSON nor YAML: ${(e as Error).message.split("\n")[0]}`, { cause: e });
    }
  }
  const items: Obj[] = [];
  for (const d of docs as Obj[]) {
    if (!d || typeof d !== "object") continue;
    if (Array.isArray(d.items)) items.push(...d.items);
    else if (typeof d.kind === "string") items.push(d);
  }
  if (items.length === 0) throw new Error("catalog holds no Kubernetes objects (no List items)");
  return items;
}

export function parseCatalog(json: unknown, clusterDomain = "cluster.local"): CatalogService[] {
  const list = json as K8sList;
  if (!list || !Array.isArray(list.items)) throw new Error("catalog is not a Kubernetes List (no items array)");
  const endpoints = new Map<string, number>();
  for (const it of list.items as Obj[]) {
    if (it?.kind === "Endpoints") {
      let n = 0;
      for (const s of it.subsets ?? []) n += (s.addresses ?? []).length;
      endpoints.set(`${it.metadata?.namespace}/${it.metadata?.name}`, n);
    } else if (it?.kind === "EndpointSlice") {
      // discovery.k8s.io/v1: one Service's endpoints may span several slices (label kubernetes.io/service-name).
      const svc = it.metadata?.labels?.["kubernetes.io/service-name"];
      if (!svc) continue;
      const k = `${it.metadata?.namespace}/${svc}`;
      const ready = (it.endpoints ?? []).filter((e: Obj) => e?.conditions?.ready !== false).length;
      endpoints.set(k, (endpoints.get(k) ?? 0) + ready);
    }
  }
  const out: CatalogService[] = [];
  for (const it of list.items as Obj[]) {
    const ns = it?.metadata?.namespace ?? "default";
    if (it?.kind === "Service") {
      const name = it.metadata?.name;
      if (!name) continue;
      const ports: CatalogPort[] = (it.spec?.ports ?? []).map((p: Obj) => ({
        port: Number(p.port),
        http: isHttp(p.name, undefined, p.appProtocol),
      }));
      const exportTo = it.metadata?.annotations?.["networking.istio.io/exportTo"];
      // spec.clusterIPs (dual-stack, core/v1 ServiceSpec) supersedes clusterIP; "None" = headless.
      const ips: string[] = (Array.isArray(it.spec?.clusterIPs) ? it.spec.clusterIPs : [it.spec?.clusterIP]).filter(
        (ip: unknown) => typeof ip === "string" && ip && ip !== "None",
      );
      out.push({
        namespace: ns,
        host: `${name}.${ns}.svc.${clusterDomain}`,
        vip: it.spec?.clusterIP !== "None",
        ports,
        endpoints: endpoints.get(`${ns}/${name}`) ?? 1,
        exportTo: exportTo ? String(exportTo).split(",") : [],
        addresses: ips,
        ...(it.spec?.selector && typeof it.spec.selector === "object" ? { selector: it.spec.selector } : {}),
      });
    } else if (it?.kind === "ServiceEntry") {
      const ports: CatalogPort[] = (it.spec?.ports ?? []).map((p: Obj) => ({
        port: Number(p.number),
        http: isHttp(p.name, p.protocol, undefined),
      }));
      const eps = Math.max(1, (it.spec?.endpoints ?? []).length);
      // ServiceEntry addresses may be CIDRs; only single addresses ("/32", "/128" or bare) name one destination.
      const addrs: string[] = (it.spec?.addresses ?? [])
        .map((a: unknown) => String(a))
        .filter((a: string) => !a.includes("/") || /\/(32|128)$/.test(a))
        .map((a: string) => a.replace(/\/(32|128)$/, ""));
      for (const h of it.spec?.hosts ?? [])
        out.push({
          namespace: ns,
          host: h,
          vip: (it.spec?.addresses ?? []).length > 0,
          ports,
          endpoints: eps,
          exportTo: it.spec?.exportTo ?? [],
          addresses: addrs,
        });
    }
  }
  return out;
}

// TEST DOUBLE: an in-memory Kubernetes API server over HTTP, so the controller's real
// @kubernetes/client-node code (discovery, list, watch, server-side apply, optimistic
// concurrency on Leases) is exercised end to end. It implements only what meshtune uses, with
// the API server's semantics for those: resourceVersion conflicts (409), AlreadyExists (409),
// NotFound (404), SSA with fieldManager + dryRun=All and field ownership (field-ownership.ts),
// and newline-delimited watch events.
// Fault rules make it behave like a flaky API server: a status (500, 409, 410 Gone…), a delay
// before answering, for N requests matching a method and path; dropWatches() ends every open
// watch the way an API server restart or a load-balancer idle timeout does. TokenReview and
// SubjectAccessReview answer from tokens and grants registered here (authentication.k8s.io/v1,
// authorization.k8s.io/v1: status.authenticated/user, status.allowed, as the k8s.io/api types
// TokenReviewStatus and SubjectAccessReviewStatus define them; RBAC's nonResourceURLs match by
// exact path here, without the trailing-"*" prefix rule the real authorizer also applies).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parse as parseYaml } from "yaml";
import { recordUpdate, serverSideApply } from "./field-ownership.js";

interface Kind {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}
const KINDS: Kind[] = [
  { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false },
  { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false },
  { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true },
  { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true },
  { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true },
  { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true },
  { group: "networking.istio.io", version: "v1beta1", plural: "sidecars", kind: "Sidecar", namespaced: true },
  {
    group: "networking.istio.io",
    version: "v1beta1",
    plural: "serviceentries",
    kind: "ServiceEntry",
    namespaced: true,
  },
  {
    group: "networking.istio.io",
    version: "v1beta1",
    plural: "virtualservices",
    kind: "VirtualService",
    namespaced: true,
  },
  {
    group: "networking.istio.io",
    version: "v1beta1",
    plural: "destinationrules",
    kind: "DestinationRule",
    namespaced: true,
  },
  // networking.istio.io/v1 serves the same objects (Istio ≥ 1.22 CRDs list v1, v1beta1, v1alpha3).
  { group: "networking.istio.io", version: "v1", plural: "virtualservices", kind: "VirtualService", namespaced: true },
  {
    group: "networking.istio.io",
    version: "v1",
    plural: "destinationrules",
    kind: "DestinationRule",
    namespaced: true,
  },
  { group: "apps", version: "v1", plural: "deployments", kind: "Deployment", namespaced: true },
  { group: "apps", version: "v1", plural: "statefulsets", kind: "StatefulSet", namespaced: true },
  { group: "apps", version: "v1", plural: "daemonsets", kind: "DaemonSet", namespaced: true },
  { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", namespaced: true },
  {
    group: "security.istio.io",
    version: "v1",
    plural: "authorizationpolicies",
    kind: "AuthorizationPolicy",
    namespaced: true,
  },
];

type Obj = { apiVersion?: string; kind?: string; metadata: Record<string, any>; [k: string]: any };
export interface Request {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string;
}
export interface Fault {
  method?: string;
  path: string | RegExp;
  status?: number;
  delayMs?: number;
  times?: number;
  watch?: boolean;
}

/** fieldSelector "a.b=v[,c=w]" by dotted path, as the API server's field selectors match (pods
 * support spec.nodeName: kubernetes pkg/registry/core/pod/strategy.go ToSelectableFields). */
function fieldsMatch(o: Obj, sel: string | null): boolean {
  if (!sel) return true;
  return sel.split(",").every((t) => {
    const [path, v] = t.split("=");
    let cur: unknown = o;
    for (const k of path.split(".")) cur = (cur as Record<string, unknown> | undefined)?.[k];
    return String(cur ?? "") === v;
  });
}

export class FakeApiServer {
  private objects = new Map<string, Obj>(); // "plural/ns/name"
  private rv = 100;
  private watchers = new Set<{ plural: string; ns: string | null; fields: string | null; res: ServerResponse }>();
  readonly requests: Request[] = [];
  /** Inject a failure: return this status for the next matching request. */
  set failNext(f: { method: string; pathIncludes: string; status: number } | null) {
    if (f) this.fault({ method: f.method, path: f.pathIncludes, status: f.status, times: 1 });
  }
  private readonly faults: (Fault & { left: number })[] = [];
  /** Add a fault rule (default: once). Returns a function that removes it. */
  fault(f: Fault): () => void {
    const r = { ...f, left: f.times ?? 1 };
    this.faults.push(r);
    return () => {
      const i = this.faults.indexOf(r);
      if (i >= 0) this.faults.splice(i, 1);
    };
  }
  /** End every open watch stream (clients must re-list/re-watch). */
  dropWatches(): number {
    const n = this.watchers.size;
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    return n;
  }
  readonly tokens = new Map<string, { username: string; groups: string[]; extra?: Record<string, string[]> }>();
  /** TokenReviews answered (the pre-authentication limits are checked against this). */
  tokenReviews = 0;
  /** Non-resource grants "user|verb|path" (RBAC nonResourceURLs). */
  readonly grants = new Set<string>();
  server: Server | null = null;
  url = "";

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    this.server?.closeAllConnections(); // keep-alive client sockets would hold close() open
    await new Promise((r) => this.server?.close(r));
  }

  /** Kubeconfig (YAML) pointing the client here. */
  kubeconfig(): string {
    return `apiVersion: v1\nkind: Config\nclusters: [{name: fake, cluster: {server: "${this.url}", insecure-skip-tls-verify: true}}]\nusers: [{name: fake, user: {token: fake-token}}]\ncontexts: [{name: fake, context: {cluster: fake, user: fake}}]\ncurrent-context: fake\n`;
  }

  get(plural: string, ns: string | null, name: string): Obj | undefined {
    return this.objects.get(`${plural}/${ns ?? ""}/${name}`);
  }
  list(plural: string, ns?: string): Obj[] {
    return [...this.objects.entries()]
      .filter(([k]) => k.startsWith(`${plural}/${ns === undefined ? "" : ns + "/"}`))
      .map(([, o]) => o);
  }

  /** Seed or change an object directly, as another client's update (it owns what it set: field-ownership.ts). */
  put(plural: string, o: Obj, manager = "kubectl-client-side-apply"): Obj {
    const k = KINDS.find((x) => x.plural === plural)!;
    const ns = k.namespaced ? (o.metadata.namespace ?? "default") : null;
    return this.store(
      plural,
      recordUpdate(this.objects.get(`${plural}/${ns ?? ""}/${o.metadata.name}`), o, manager) as Obj,
    );
  }

  private store(plural: string, o: Obj): Obj {
    const k = KINDS.find((x) => x.plural === plural)!;
    const ns = k.namespaced ? (o.metadata.namespace ?? "default") : null;
    const key = `${plural}/${ns ?? ""}/${o.metadata.name}`;
    const existed = this.objects.has(key);
    const obj: Obj = {
      apiVersion: k.group ? `${k.group}/${k.version}` : k.version,
      kind: k.kind,
      ...o,
      metadata: {
        ...o.metadata,
        ...(ns ? { namespace: ns } : {}),
        resourceVersion: String(++this.rv),
        uid: o.metadata.uid ?? `uid-${this.rv}`,
      },
    };
    this.objects.set(key, obj);
    this.emit(plural, ns, existed ? "MODIFIED" : "ADDED", obj);
    return obj;
  }

  remove(plural: string, ns: string | null, name: string): boolean {
    const key = `${plural}/${ns ?? ""}/${name}`;
    const o = this.objects.get(key);
    if (!o) return false;
    this.objects.delete(key);
    this.emit(plural, ns, "DELETED", o);
    return true;
  }

  private emit(plural: string, ns: string | null, type: string, object: Obj) {
    for (const w of this.watchers)
      if (w.plural === plural && (w.ns === null || w.ns === ns) && fieldsMatch(object, w.fields))
        w.res.write(JSON.stringify({ type, object }) + "\n");
  }

  private send(res: ServerResponse, status: number, body: unknown) {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  }

  private status(res: ServerResponse, code: number, reason: string, message: string) {
    this.send(res, code, { kind: "Status", apiVersion: "v1", status: "Failure", reason, message, code });
  }

  private async body(req: IncomingMessage): Promise<Obj> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    return (req.headers["content-type"]?.includes("yaml") ? parseYaml(text) : JSON.parse(text)) as Obj;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? "/", "http://x");
    const method = req.method ?? "GET";
    this.requests.push({
      method,
      path: u.pathname,
      query: u.searchParams,
      contentType: String(req.headers["content-type"] ?? ""),
    });
    const isWatch = u.searchParams.get("watch") === "true" || u.searchParams.get("watch") === "1";
    const f = this.faults.find(
      (x) =>
        x.left > 0 &&
        (!x.method || x.method === method) &&
        (x.watch === undefined || x.watch === isWatch) &&
        (typeof x.path === "string" ? u.pathname.includes(x.path) : x.path.test(u.pathname)),
    );
    if (f) {
      f.left--;
      if (f.delayMs) await new Promise((r) => setTimeout(r, f.delayMs));
      if (f.status)
        return this.status(
          res,
          f.status,
          f.status === 409 ? "Conflict" : f.status === 410 ? "Expired" : "InternalError",
          "injected failure",
        );
    }
    if (method === "POST" && u.pathname === "/apis/authentication.k8s.io/v1/tokenreviews") {
      const b = await this.body(req);
      const user = this.tokens.get(b.spec?.token);
      this.tokenReviews++;
      return this.send(res, 201, {
        ...b,
        status: user ? { authenticated: true, user } : { authenticated: false, error: "invalid bearer token" },
      });
    }
    if (method === "POST" && u.pathname === "/apis/authorization.k8s.io/v1/subjectaccessreviews") {
      const b = await this.body(req);
      const a = b.spec?.nonResourceAttributes;
      // RBAC as the API server ships it: system:discovery grants GET /api, /api/*, /apis, /apis/*
      // (and /version, /healthz...) to every authenticated user (bootstrappolicy/policy.go).
      const discovery = a?.verb === "get" && /^\/(apis?|version|healthz|livez|readyz)(\/|$)/.test(a.path ?? "");
      const allowed = !!a && (discovery || this.grants.has(`${b.spec.user}|${a.verb}|${a.path}`));
      return this.send(res, 201, { ...b, status: { allowed, reason: allowed ? "granted" : "" } });
    }
    // Discovery
    const disc = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(u.pathname);
    if (disc && method === "GET") {
      const group = disc[1] ? "" : disc[2],
        version = disc[1] ?? disc[3];
      return this.send(res, 200, {
        kind: "APIResourceList",
        apiVersion: "v1",
        groupVersion: group ? `${group}/${version}` : version,
        resources: KINDS.filter((k) => k.group === group && k.version === version).map((k) => ({
          name: k.plural,
          singularName: k.kind.toLowerCase(),
          namespaced: k.namespaced,
          kind: k.kind,
          verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
        })),
      });
    }
    // /api/v1/... or /apis/GROUP/VERSION/...; then [namespaces/NS/]PLURAL[/NAME] or namespaces[/NAME]
    const core = /^\/api\/v1\/(.+)$/.exec(u.pathname),
      named = /^\/apis\/([^/]+)\/[^/]+\/(.+)$/.exec(u.pathname);
    const group = named ? named[1] : "";
    const parts = (core ? core[1] : named ? named[2] : "").split("/");
    let ns: string | null = null,
      plural = parts[0],
      name: string | undefined = parts[1];
    if (parts[0] === "namespaces" && parts.length >= 3) [ns, plural, name] = [parts[1], parts[2], parts[3]];
    const kind = KINDS.find((k) => k.plural === plural && k.group === group);
    if (!kind) return this.status(res, 404, "NotFound", `no route ${method} ${u.pathname}`);
    const scopeNs = kind.namespaced ? ns : null;

    if (method === "GET" && !name) {
      if (u.searchParams.get("watch") === "true" || u.searchParams.get("watch") === "1") {
        res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
        res.flushHeaders(); // the client waits for the headers before it counts the watch as started
        const w = { plural: plural, ns: scopeNs, fields: u.searchParams.get("fieldSelector"), res };
        this.watchers.add(w);
        req.on("close", () => this.watchers.delete(w));
        return;
      }
      const items = this.list(plural, scopeNs ?? undefined);
      const sel = u.searchParams.get("labelSelector");
      const fields = u.searchParams.get("fieldSelector");
      const filtered = (
        sel
          ? items.filter((o) =>
              sel.split(",").every((t) => {
                const [k, v] = t.split("=");
                return o.metadata.labels?.[k] === v;
              }),
            )
          : items
      ).filter((o) => fieldsMatch(o, fields));
      return this.send(res, 200, {
        kind: `${kind.kind}List`,
        apiVersion: kind.group ? `${kind.group}/${kind.version}` : "v1",
        metadata: { resourceVersion: String(this.rv) },
        items: filtered,
      });
    }
    const existing = name ? this.get(plural, scopeNs, name) : undefined;
    if (method === "GET")
      return existing
        ? this.send(res, 200, existing)
        : this.status(res, 404, "NotFound", `${plural} "${name}" not found`);
    if (method === "DELETE") {
      if (!existing) return this.status(res, 404, "NotFound", `${plural} "${name}" not found`);
      if (u.searchParams.get("dryRun") !== "All") this.remove(plural, scopeNs, name);
      return this.send(res, 200, { kind: "Status", apiVersion: "v1", status: "Success" });
    }
    const body = await this.body(req);
    const dry = u.searchParams.get("dryRun") === "All";
    if (method === "POST") {
      if (this.get(plural, scopeNs, body.metadata.name))
        return this.status(res, 409, "AlreadyExists", `${plural} "${body.metadata.name}" already exists`);
      return this.send(
        res,
        201,
        dry
          ? body
          : this.put(
              plural,
              { ...body, metadata: { ...body.metadata, namespace: scopeNs ?? undefined } },
              u.searchParams.get("fieldManager") ?? "client",
            ),
      );
    }
    if (method === "PUT") {
      if (!existing) return this.status(res, 404, "NotFound", `${plural} "${name}" not found`);
      if (body.metadata.resourceVersion && body.metadata.resourceVersion !== existing.metadata.resourceVersion)
        return this.status(
          res,
          409,
          "Conflict",
          `Operation cannot be fulfilled on ${plural} "${name}": the object has been modified`,
        );
      return this.send(
        res,
        200,
        dry
          ? body
          : this.put(
              plural,
              { ...body, metadata: { ...body.metadata, uid: existing.metadata.uid } },
              u.searchParams.get("fieldManager") ?? "client",
            ),
      );
    }
    if (method === "PATCH") {
      if (!req.headers["content-type"]?.startsWith("application/apply-patch"))
        return this.status(res, 415, "UnsupportedMediaType", "only server-side apply is implemented");
      const manager = u.searchParams.get("fieldManager");
      if (!manager) return this.status(res, 422, "Invalid", "fieldManager is required for apply patch");
      const r = serverSideApply(existing, body, manager, u.searchParams.get("force") === "true");
      if ("conflicts" in r)
        return this.status(
          res,
          409,
          "Conflict",
          `Apply failed with ${r.conflicts.length} conflict${r.conflicts.length > 1 ? "s" : ""}: ${r.conflicts.join(", ")}`,
        );
      const merged: Obj = {
        ...r.object,
        kind: kind.kind,
        apiVersion: body.apiVersion ?? r.object.apiVersion,
        metadata: { ...r.object.metadata, namespace: scopeNs ?? undefined },
      } as Obj;
      if (dry)
        return this.send(res, 200, {
          ...merged,
          metadata: { ...merged.metadata, resourceVersion: existing?.metadata.resourceVersion ?? "0" },
        });
      return this.send(res, existing ? 200 : 201, this.store(plural, merged));
    }
    return this.status(res, 405, "MethodNotAllowed", method);
  }
}

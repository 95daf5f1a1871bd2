// Kubernetes authentication and authorization for callers that are not behind the mesh
// (node agents on the host network, kubectl port-forward, dashboards): a bearer token checked
// with TokenReview (authentication.k8s.io/v1), then SubjectAccessReview (authorization.k8s.io/v1)
// for reads, the way kube-rbac-proxy guards metrics endpoints. Answers are cached briefly and
// the caches are bounded; an API error denies (never allows) and is reported as such.
import { createHash } from "node:crypto";
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";

export interface UserInfo {
  username: string;
  groups: string[];
  /** TokenReview's user.extra: bound tokens carry authentication.kubernetes.io/node-name and pod-name. */
  extra?: Record<string, string[]>;
}

/** The node a pod-bound service-account token was issued for (Kubernetes ≥ 1.30, ServiceAccountTokenPodNodeInfo). */
export const NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name";

export interface AccessReviewer {
  /** The token's user, null when the API server says the token is not valid. Throws on API errors. */
  authenticate(token: string): Promise<UserInfo | null>;
  /** Whether a TokenReview answer for `token` is cached (no API call would be made). */
  cached?(token: string): boolean;
  /** Whether `user` may `verb` the non-resource `path` (RBAC nonResourceURLs). Throws on API errors. */
  allowed(user: UserInfo, verb: string, path: string): Promise<boolean>;
}

class TtlCache<V> {
  private readonly m = new Map<string, { v: V; until: number }>();
  constructor(
    private readonly ttlMs: number,
    private readonly max: number,
  ) {}
  get(k: string): V | undefined {
    const e = this.m.get(k);
    if (!e) return undefined;
    if (e.until < Date.now()) {
      this.m.delete(k);
      return undefined;
    }
    return e.v;
  }
  set(k: string, v: V): void {
    if (this.m.size >= this.max) this.m.delete(this.m.keys().next().value as string); // oldest first
    this.m.set(k, { v, until: Date.now() + this.ttlMs });
  }
}

const tokenKey = (token: string) => createHash("sha256").update(token).digest("hex"); // never keep the token itself

export class KubeAccessReviewer implements AccessReviewer {
  private readonly authn: AuthenticationV1Api;
  private readonly authz: AuthorizationV1Api;
  private readonly tokens = new TtlCache<UserInfo | null>(30_000, 10_000);
  private readonly decisions = new TtlCache<boolean>(30_000, 10_000);
  constructor(
    kc: KubeConfig,
    private readonly audiences: string[] = [],
  ) {
    this.authn = kc.makeApiClient(AuthenticationV1Api);
    this.authz = kc.makeApiClient(AuthorizationV1Api);
  }

  cached(token: string): boolean {
    return this.tokens.get(tokenKey(token)) !== undefined;
  }

  async authenticate(token: string): Promise<UserInfo | null> {
    const key = tokenKey(token);
    const hit = this.tokens.get(key);
    if (hit !== undefined) return hit;
    const r = await this.authn.createTokenReview({
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenReview",
        spec: { token, audiences: this.audiences.length ? this.audiences : undefined },
      },
    });
    const u =
      r.status?.authenticated && r.status.user?.username
        ? {
            username: r.status.user.username,
            groups: r.status.user.groups ?? [],
            ...(r.status.user.extra ? { extra: r.status.user.extra } : {}),
          }
        : null;
    this.tokens.set(key, u);
    return u;
  }

  async allowed(user: UserInfo, verb: string, path: string): Promise<boolean> {
    const key = `${user.username}|${user.groups.join(",")}|${verb}|${path}`;
    const hit = this.decisions.get(key);
    if (hit !== undefined) return hit;
    const r = await this.authz.createSubjectAccessReview({
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: { user: user.username, groups: user.groups, nonResourceAttributes: { path, verb } },
      },
    });
    const ok = r.status?.allowed === true;
    this.decisions.set(key, ok);
    return ok;
  }
}

/** A service account's Kubernetes user (as the API server names it in TokenReview). */
export function serviceAccountUser(ns: string, sa: string): UserInfo {
  return {
    username: `system:serviceaccount:${ns}:${sa}`,
    groups: ["system:serviceaccounts", `system:serviceaccounts:${ns}`, "system:authenticated"],
  };
}

/** Regex sources for a namespace (DNS-1123 label) and a service account name (DNS-1123 subdomain). */
export const NS_RE = "[a-z0-9-]{1,63}",
  SA_RE = "[a-z0-9.-]{1,253}";
const SA_USER = new RegExp(`^system:serviceaccount:(${NS_RE}):(${SA_RE})$`);

/** "system:serviceaccount:NS:SA" → [NS, SA]; null for other users. */
export function parseServiceAccountUser(username: string): [string, string] | null {
  const m = SA_USER.exec(username);
  return m ? [m[1], m[2]] : null;
}

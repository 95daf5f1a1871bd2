// TEST DOUBLE support: server-side apply field ownership, following the Kubernetes docs
// "Server-Side Apply" (reference/using-api/server-side-apply):
//  - Conflicts: applying a different value to a field another manager owns fails with 409
//    "Apply failed with N conflict(s): conflict with "<manager>": <path>" unless force=true,
//    which takes the field over. The same value makes the appliers co-owners.
//  - Field management: a field the applier owned and now omits is removed when no other
//    manager owns it (with other owners it just loses this owner).
//  - Update (POST/PUT) makes its manager the owner of the fields it set or changed.
// Ownership is recorded in metadata.managedFields with fieldsV1 in the real "f:<key>" form.
// Simplification: every list is atomic (owned whole); true for lists without a merge key, such
// as nodeAffinity's preferred terms, not for containers (meshtune never applies those).
type Json = Record<string, any>;

/** Fields that identify the object; never owned. */
const IDENTITY = new Set([
  "apiVersion",
  "kind",
  "status",
  "metadata.name",
  "metadata.namespace",
  "metadata.resourceVersion",
  "metadata.uid",
  "metadata.managedFields",
  "metadata.generation",
  "metadata.creationTimestamp",
]);
const isMap = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Leaf paths (arrays and scalars) of an object, as string[] key paths. */
export function leaves(
  o: Json,
  prefix: string[] = [],
  out = new Map<string, { path: string[]; value: unknown }>(),
): Map<string, { path: string[]; value: unknown }> {
  for (const [k, v] of Object.entries(o ?? {})) {
    const p = [...prefix, k],
      key = p.join("\u0000");
    if (IDENTITY.has(p.join("."))) continue;
    if (isMap(v))
      leaves(v, p, out); // an empty map claims nothing
    else out.set(key, { path: p, value: v });
  }
  return out;
}

const get = (o: Json, p: string[]) => p.reduce<unknown>((c, k) => (isMap(c) ? c[k] : undefined), o);
function set(o: Json, p: string[], v: unknown): void {
  let c = o;
  for (const k of p.slice(0, -1)) c = isMap(c[k]) ? c[k] : (c[k] = {});
  c[p[p.length - 1]] = structuredClone(v);
}
function unset(o: Json, p: string[]): void {
  const parents: Json[] = [o];
  for (const k of p.slice(0, -1)) {
    const n = parents[parents.length - 1][k];
    if (!isMap(n)) return;
    parents.push(n);
  }
  delete parents[parents.length - 1][p[p.length - 1]];
  for (let i = parents.length - 1; i > 0; i--)
    if (!Object.keys(parents[i]).length) delete parents[i - 1][p[i - 1]];
    else break;
}
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** path key → managers, from managedFields' fieldsV1. */
export function owners(o: Json | undefined): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  const walk = (f: Json, prefix: string[], mgr: string) => {
    for (const [k, v] of Object.entries(f)) {
      if (!k.startsWith("f:")) continue;
      const p = [...prefix, k.slice(2)];
      if (isMap(v) && Object.keys(v).length) walk(v, p, mgr);
      else {
        const key = p.join("\u0000");
        (m.get(key) ?? m.set(key, new Set()).get(key)!).add(mgr);
      }
    }
  };
  for (const e of o?.metadata?.managedFields ?? []) walk(e.fieldsV1 ?? {}, [], e.manager);
  return m;
}

function managedFields(own: Map<string, Set<string>>, ops: Map<string, string>): Json[] {
  const per = new Map<string, Json>();
  for (const [key, ms] of own)
    for (const mgr of ms) {
      const f = per.get(mgr) ?? per.set(mgr, {}).get(mgr)!;
      let c = f;
      for (const k of key.split("\u0000")) c = c[`f:${k}`] ??= {};
    }
  return [...per].map(([manager, fieldsV1]) => ({
    manager,
    operation: ops.get(manager) ?? "Apply",
    fieldsType: "FieldsV1",
    fieldsV1,
  }));
}

function opsOf(o: Json | undefined): Map<string, string> {
  return new Map((o?.metadata?.managedFields ?? []).map((e: Json) => [e.manager, e.operation]));
}

/** Server-side apply of `body` by `manager`: the merged object, or the conflicts. */
export function serverSideApply(
  existing: Json | undefined,
  body: Json,
  manager: string,
  force: boolean,
): { object: Json } | { conflicts: string[] } {
  const own = owners(existing);
  const applied = leaves(body);
  const conflicts: string[] = [];
  for (const [key, { path, value }] of applied) {
    const others = [...(own.get(key) ?? [])].filter((m) => m !== manager);
    if (others.length && !force && existing && !same(get(existing, path), value))
      conflicts.push(`conflict with "${others[0]}": .${path.join(".")}`);
  }
  if (conflicts.length) return { conflicts };
  const merged: Json = structuredClone(existing ?? {});
  for (const [k, v] of Object.entries(body)) if (!isMap(v) && k !== "metadata") merged[k] = v;
  merged.metadata = { ...(merged.metadata ?? {}), name: body.metadata?.name ?? merged.metadata?.name };
  for (const [key, ms] of own) {
    if (!ms.has(manager) || applied.has(key)) continue;
    ms.delete(manager);
    if (!ms.size) {
      own.delete(key);
      unset(merged, key.split("\u0000"));
    }
  }
  for (const [key, { path, value }] of applied) {
    set(merged, path, value);
    own.set(key, force ? new Set([manager]) : new Set([...(own.get(key) ?? []), manager]));
  }
  const ops = opsOf(existing);
  ops.set(manager, "Apply");
  merged.metadata.managedFields = managedFields(own, ops);
  return { object: merged };
}

/** Update (POST/PUT) by `manager`: it owns what it set or changed; removed fields lose their owners. */
export function recordUpdate(existing: Json | undefined, next: Json, manager: string): Json {
  const own = owners(existing);
  const now = leaves(next);
  for (const key of [...own.keys()]) if (!now.has(key)) own.delete(key);
  for (const [key, { path, value }] of now) {
    if (existing && own.has(key) && same(get(existing, path), value)) continue;
    own.set(key, new Set([manager]));
  }
  const ops = opsOf(existing);
  ops.set(manager, "Update");
  return { ...next, metadata: { ...next.metadata, managedFields: managedFields(own, ops) } };
}

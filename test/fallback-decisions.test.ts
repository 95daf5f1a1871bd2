// The fallback's decision cache (controller/fallback/decision-cache.ts): which inputs share a
// decision, and the three ways a decision ends (a new context, its TTL, the size bound).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DecisionCache } from "../controller/fallback/decision-cache.js";
import type { Route, RouteContext } from "../controller/fallback/route.js";

const ctx = () => ({}) as RouteContext; // only its identity matters to the cache
const ok = (host: string): Route => ({ ok: true, host, port: 80, registered: true, dial: host });
const frontend = { namespace: "shop", serviceAccount: "frontend", podIp: "10.0.0.1" };

test("a decision is shared by pods of one identity, never across identities, protocols or authorities", () => {
  const c = ctx();
  const cache = new DecisionCache();
  assert.is(cache.get(c, "a:80", "HTTP", frontend), undefined);
  cache.set(c, "a:80", "HTTP", frontend, ok("a"));
  assert.equal(cache.get(c, "a:80", "HTTP", { ...frontend, podIp: "10.0.0.2" }), ok("a"));
  assert.is(cache.get(c, "a:80", "HTTP", { ...frontend, serviceAccount: "other" }), undefined);
  assert.is(cache.get(c, "a:80", "HTTP", { ...frontend, namespace: "evil" }), undefined);
  assert.is(cache.get(c, "a:80", "TLS", frontend), undefined);
  assert.is(cache.get(c, "a:8080", "HTTP", frontend), undefined);
});

test("a new context forgets everything; a decision made under an old one is not stored", () => {
  const c1 = ctx(),
    c2 = ctx();
  const cache = new DecisionCache();
  cache.get(c1, "a:80", "HTTP", frontend);
  cache.set(c1, "a:80", "HTTP", frontend, ok("a"));
  assert.is(cache.get(c2, "a:80", "HTTP", frontend), undefined);
  assert.is(cache.size(), 0);
  cache.set(c1, "b:80", "HTTP", frontend, ok("b")); // route() began before the change
  assert.is(cache.get(c2, "b:80", "HTTP", frontend), undefined);
});

test("a decision lives ttlMs; at most `max` are kept, the oldest dropped first", () => {
  let now = 1000;
  const c = ctx();
  const cache = new DecisionCache(3, 5000, () => now);
  cache.get(c, "x", "HTTP", frontend);
  for (const h of ["a", "b", "c", "d"]) cache.set(c, `${h}:80`, "HTTP", frontend, ok(h));
  assert.is(cache.size(), 3);
  assert.is(cache.get(c, "a:80", "HTTP", frontend), undefined, "the oldest went first");
  assert.equal(cache.get(c, "d:80", "HTTP", frontend), ok("d"));
  now += 5000;
  assert.is(cache.get(c, "d:80", "HTTP", frontend), undefined, "expired");
  assert.is(cache.size(), 2);
});

test("only registry, policy and DNS outcomes are kept: a bad or address Host is decided again", () => {
  const c = ctx();
  const cache = new DecisionCache();
  cache.get(c, "x", "HTTP", frontend);
  const no = (reason: string): Route => ({ ok: false, status: 403, reason, detail: "" }) as Route;
  for (const r of ["bad-host", "address-host"]) cache.set(c, r, "HTTP", frontend, no(r));
  assert.is(cache.size(), 0);
  for (const r of ["policy", "not-exported", "meshtune-endpoint", "refused-address"])
    cache.set(c, r, "HTTP", frontend, no(r));
  assert.is(cache.size(), 4);
});

test("a failed lookup is kept one second: retries do not each take a resolver thread", () => {
  let now = 0;
  const c = ctx();
  const cache = new DecisionCache(10, 5000, () => now);
  cache.get(c, "x", "HTTP", frontend);
  const dns = { ok: false, status: 502, reason: "dns", detail: "timed out" } as Route;
  cache.set(c, "slow.example:80", "HTTP", frontend, dns);
  now = 999;
  assert.equal(cache.get(c, "slow.example:80", "HTTP", frontend), dns);
  now = 1000;
  assert.is(cache.get(c, "slow.example:80", "HTTP", frontend), undefined);
});

test.run();

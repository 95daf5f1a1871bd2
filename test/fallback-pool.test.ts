// The fallback's upstream pool (controller/fallback/upstream-pool.ts): kept-alive connections are
// reused across requests, every bound holds (sockets per upstream, upstreams pooled, least
// recently used first out), and closing the pool closes its connections. Real sockets on loopback.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createServer, request, type Server } from "node:http";
import { connect } from "node:net";
import { UpstreamPool } from "../controller/fallback/upstream-pool.js";

async function upstream(): Promise<{ server: Server; port: number; connections: () => number }> {
  let n = 0;
  const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    req.resume();
    req.on("end", () => setTimeout(() => res.end("ok"), 20));
  });
  server.on("connection", () => n++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as { port: number }).port, connections: () => n };
}
const get = (pool: UpstreamPool, port: number) =>
  new Promise<string>((resolve, reject) => {
    const r = request({ path: "/", agent: pool.agent("127.0.0.1", port) }, (res) => {
      let b = "";
      res.on("data", (d) => (b += d));
      res.on("end", () => resolve(b));
    });
    r.on("error", reject);
    r.end();
  });

test("requests one after another share one upstream connection; concurrency never exceeds perUpstream", async () => {
  const u = await upstream();
  const pool = new UpstreamPool((h, p) => connect({ host: h, port: p }), {
    upstreams: 4,
    perUpstream: 3,
    freePerUpstream: 3,
    idleMs: 5_000,
  });
  try {
    for (let i = 0; i < 5; i++) assert.is(await get(pool, u.port), "ok");
    assert.is(u.connections(), 1, "five sequential requests, one connection");
    await Promise.all(Array.from({ length: 12 }, () => get(pool, u.port)));
    assert.ok(u.connections() <= 3, `12 concurrent requests over ${u.connections()} connections (bound 3)`);
  } finally {
    pool.close();
    u.server.close();
    u.server.closeAllConnections();
  }
});

test("at most `upstreams` upstreams are pooled; the least recently used is closed first", async () => {
  const us = await Promise.all([upstream(), upstream(), upstream()]);
  const pool = new UpstreamPool((h, p) => connect({ host: h, port: p }), {
    upstreams: 2,
    perUpstream: 2,
    freePerUpstream: 2,
    idleMs: 5_000,
  });
  try {
    await get(pool, us[0].port);
    await get(pool, us[1].port);
    await get(pool, us[0].port); // 0 is now more recent than 1
    await get(pool, us[2].port); // evicts 1
    assert.is(pool.size(), 2);
    await get(pool, us[0].port);
    assert.is(us[0].connections(), 1, "upstream 0 kept its connection");
    await get(pool, us[1].port);
    assert.is(us[1].connections(), 2, "upstream 1 was evicted: a new connection");
  } finally {
    pool.close();
    for (const u of us) {
      u.server.close();
      u.server.closeAllConnections();
    }
  }
});

test.run();

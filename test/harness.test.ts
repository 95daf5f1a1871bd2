// The test host itself, against the proxy-wasm ABI v0.2.1 spec where it matters.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { serializePairs, deserializePairs, encodeProperty, propertyPath } from "./proxywasm/abi.js";
import { HostBuilder } from "./proxywasm/host.js";
import { FILTER_WASM } from "./helpers/filter.js";

test("header map serialization matches the spec layout", () => {
  const b = serializePairs([
    [":status", "200"],
    ["a", ""],
  ]);
  const dv = new DataView(b.buffer);
  assert.is(dv.getUint32(0, true), 2);
  assert.equal(
    [dv.getUint32(4, true), dv.getUint32(8, true), dv.getUint32(12, true), dv.getUint32(16, true)],
    [7, 3, 1, 0],
  );
  assert.is(new TextDecoder().decode(b.subarray(20)), ":status\x00200\x00a\x00\x00");
  assert.equal(deserializePairs(b), [
    [":status", "200"],
    ["a", ""],
  ]);
});

test("property encoding: strings raw, integers 8-byte little-endian; paths NUL-separated", () => {
  assert.equal([...encodeProperty(503)], [0xf7, 0x01, 0, 0, 0, 0, 0, 0]);
  assert.equal([...encodeProperty(1_500_000n)], [0x60, 0xe3, 0x16, 0, 0, 0, 0, 0]);
  assert.equal([...encodeProperty("ab")], [97, 98]);
  assert.is(propertyPath(["node", "metadata", "NAME"]), "node\0metadata\0NAME");
});

test("host functions: NotFound, BadArgument, Unimplemented, memory hand-off", () => {
  const h = new HostBuilder()
    .wasmFile(FILTER_WASM)
    .property(["node", "metadata", "NAME"], "p-1")
    .property("response.code", 404)
    .build();
  h.start();
  const env = h.env as Record<string, (...a: number[]) => number>;
  const out = h.alloc(new Uint8Array(8));
  const [pPtr, pLen] = h.alloc("node\0metadata\0NAME");
  assert.is(env.proxy_get_property(pPtr, pLen, out[0], out[0] + 4), 0);
  assert.is(new TextDecoder().decode(h.read(h.u32(out[0]), h.u32(out[0] + 4))), "p-1");
  const [cPtr, cLen] = h.alloc("response\0code");
  assert.is(env.proxy_get_property(cPtr, cLen, out[0], out[0] + 4), 0);
  assert.is(h.u32(out[0] + 4), 8);
  assert.is(new DataView(h.read(h.u32(out[0]), 8).buffer).getBigInt64(0, true), 404n);
  const [mPtr, mLen] = h.alloc("no\0such");
  assert.is(env.proxy_get_property(mPtr, mLen, out[0], out[0] + 4), 1, "NotFound");
  assert.is(env.proxy_get_buffer_bytes(2 /* DownstreamData */, 0, 10, out[0], out[0] + 4), 12, "Unimplemented");
  assert.is(
    env.proxy_get_header_map_value(6, pPtr, 1, out[0], out[0] + 4),
    2,
    "no http-call response outside its callback: BadArgument",
  );
  // http call without :authority is rejected, as Envoy does
  const hdr = h.alloc(
    serializePairs([
      [":method", "POST"],
      [":path", "/"],
    ]),
  );
  const [uPtr, uLen] = h.alloc("c");
  assert.is(env.proxy_http_call(uPtr, uLen, hdr[0], hdr[1], 0, 0, 0, 0, 1000, out[0]), 2);
  assert.is(env.proxy_set_effective_context(999), 2, "unknown context");
});

test("lifecycle: root configure, stream hooks, tick period, metrics defined", () => {
  const h = new HostBuilder().wasmFile(FILTER_WASM).pluginConfig({ flushIntervalMs: 250 }).build();
  assert.ok(h.start());
  assert.is(h.tickPeriodMs, 250);
  assert.equal([...h.metrics.values()].map((m) => m.name).sort(), [
    "meshtune_edges_dropped",
    "meshtune_reports_failed",
    "meshtune_reports_refused",
    "meshtune_reports_sent",
  ]);
  assert.equal(h.http({ properties: { "xds.cluster_name": "outbound|80||a.b.svc.cluster.local" } }), {
    request: 0,
    response: 0,
  });
  assert.ok((h.calls.get("proxy_get_property") ?? 0) > 0);
});

test.run();

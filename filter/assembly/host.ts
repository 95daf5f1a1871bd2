// Property and header access through the raw ABI. proxy-runtime 0.1.8's get_property
// aborts the VM when a property is missing (CHECK_RESULT), so the filter never uses it.
import * as imports from "@solo-io/proxy-runtime/imports";
import { free } from "@solo-io/proxy-runtime/malloc";

const OK: u32 = 0;
const retPtr = new ArrayBuffer(8);
const retLen = new ArrayBuffer(8);

/** A property path, NUL-separated per the ABI, encoded once. */
export function path2(a: string, b: string): ArrayBuffer {
  return String.UTF8.encode(a + "\0" + b);
}
export function path3(a: string, b: string, c: string): ArrayBuffer {
  return String.UTF8.encode(a + "\0" + b + "\0" + c);
}
export function path4(a: string, b: string, c: string, d: string): ArrayBuffer {
  return String.UTF8.encode(a + "\0" + b + "\0" + c + "\0" + d);
}

function fetch(p: ArrayBuffer): bool {
  return (
    imports.proxy_get_property(
      changetype<usize>(p),
      p.byteLength,
      changetype<usize>(retPtr),
      changetype<usize>(retLen),
    ) == OK
  );
}

/** The string the host just handed back through retPtr/retLen, freed after decoding; "" if none. */
function takeString(): string {
  const ptr = load<usize>(changetype<usize>(retPtr));
  const len = load<usize>(changetype<usize>(retLen));
  if (ptr == 0) return "";
  let s = "";
  if (len != 0) s = String.UTF8.decodeUnsafe(ptr, len);
  free(ptr);
  return s;
}

/** String property, "" when absent. */
export function propString(p: ArrayBuffer): string {
  if (!fetch(p)) return "";
  return takeString();
}

/** Integer/duration/timestamp property (8-byte little-endian), `dflt` when absent or malformed. */
export function propInt(p: ArrayBuffer, dflt: i64): i64 {
  if (!fetch(p)) return dflt;
  const ptr = load<usize>(changetype<usize>(retPtr));
  const len = load<usize>(changetype<usize>(retLen));
  if (ptr == 0) return dflt;
  const v = len == 8 ? load<i64>(ptr) : dflt;
  free(ptr);
  return v;
}

/** A header value from a header map (e.g. the http-call response), "" when absent. */
export function headerValue(typ: u32, key: string): string {
  const k = String.UTF8.encode(key);
  if (
    imports.proxy_get_header_map_value(
      typ,
      changetype<usize>(k),
      k.byteLength,
      changetype<usize>(retPtr),
      changetype<usize>(retLen),
    ) != OK
  )
    return "";
  return takeString();
}

/** Plugin configuration bytes (the runtime's own onConfigure passes a size where a pointer belongs). */
export function pluginConfig(size: u32): string {
  if (size == 0) return "";
  if (
    imports.proxy_get_buffer_bytes(
      7 /* PluginConfiguration */,
      0,
      size,
      changetype<usize>(retPtr),
      changetype<usize>(retLen),
    ) != OK
  )
    return "";
  return takeString();
}

export function nowMs(): u64 {
  imports.proxy_get_current_time_nanoseconds(changetype<usize>(retPtr));
  return load<u64>(changetype<usize>(retPtr)) / 1000000;
}

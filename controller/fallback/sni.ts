// The server name of a TLS ClientHello, read without terminating TLS (passthrough). Layout per
// RFC 8446 §4.1.2 (ClientHello), §5.1 (records: type 22 = handshake, a handshake message may
// span several records) and RFC 6066 §3 (server_name extension 0, name_type 0 = host_name).
// Bounded: a ClientHello larger than MAX_HELLO is refused, never buffered without limit.

export const MAX_HELLO = 64 * 1024;

export type SniResult =
  | { kind: "sni"; name: string; consumed: number }
  | { kind: "no-sni" } // a valid ClientHello without server_name
  | { kind: "need-more" } // a prefix of a ClientHello: read more bytes
  | { kind: "not-tls" } // the first byte is not a TLS handshake record
  | { kind: "malformed"; why: string };

/** Quick look at the first byte: a TLS handshake record starts with 22 (0x16). */
export function looksLikeTls(first: number): boolean {
  return first === 0x16;
}

export function parseClientHelloSni(buf: Buffer): SniResult {
  if (buf.length === 0) return { kind: "need-more" };
  if (!looksLikeTls(buf[0])) return { kind: "not-tls" };
  // Reassemble the handshake message from consecutive handshake records.
  const parts: Buffer[] = [];
  let off = 0,
    have = 0,
    need = -1;
  while (need < 0 || have < need) {
    if (off + 5 > buf.length)
      return buf.length > MAX_HELLO ? { kind: "malformed", why: "ClientHello too large" } : { kind: "need-more" };
    if (buf[off] !== 0x16) return { kind: "malformed", why: "handshake interrupted by another record type" };
    if (buf[off + 1] !== 3)
      return { kind: "malformed", why: `record version ${buf[off + 1]}.${buf[off + 2]} is not TLS` };
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384 + 256) return { kind: "malformed", why: `record length ${len}` };
    if (off + 5 + len > buf.length)
      return buf.length > MAX_HELLO ? { kind: "malformed", why: "ClientHello too large" } : { kind: "need-more" };
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0) {
      const h = Buffer.concat(parts);
      if (h.length < 4) continue;
      if (h[0] !== 1) return { kind: "malformed", why: `handshake type ${h[0]} is not ClientHello` };
      need = 4 + h.readUIntBE(1, 3);
      if (need > MAX_HELLO) return { kind: "malformed", why: "ClientHello too large" };
    }
  }
  const hello = Buffer.concat(parts).subarray(4, need);
  const name = serverName(hello);
  if (typeof name === "object") return name;
  return name === "" ? { kind: "no-sni" } : { kind: "sni", name, consumed: off };
}

/** server_name from a ClientHello body; "" when absent. */
function serverName(b: Buffer): string | { kind: "malformed"; why: string } {
  const bad = (why: string) => ({ kind: "malformed" as const, why });
  let p = 2 + 32; // legacy_version, random
  if (p + 1 > b.length) return bad("truncated ClientHello");
  p += 1 + b[p]; // legacy_session_id
  if (p + 2 > b.length) return bad("truncated ClientHello");
  p += 2 + b.readUInt16BE(p); // cipher_suites
  if (p + 1 > b.length) return bad("truncated ClientHello");
  p += 1 + b[p]; // legacy_compression_methods
  if (p === b.length) return ""; // no extensions
  if (p + 2 > b.length) return bad("truncated ClientHello");
  const end = p + 2 + b.readUInt16BE(p);
  if (end > b.length) return bad("extensions overrun the ClientHello");
  p += 2;
  while (p + 4 <= end) {
    const type = b.readUInt16BE(p),
      len = b.readUInt16BE(p + 2);
    p += 4;
    if (p + len > end) return bad("extension overruns the extensions block");
    if (type === 0) {
      let q = p + 2;
      const listEnd = q + (len >= 2 ? b.readUInt16BE(p) : 0);
      if (len < 2 || listEnd > p + len) return bad("malformed server_name list");
      while (q + 3 <= listEnd) {
        const nt = b[q],
          nl = b.readUInt16BE(q + 1);
        q += 3;
        if (q + nl > listEnd) return bad("server_name overruns its list");
        if (nt === 0) {
          const name = b.toString("latin1", q, q + nl);
          // RFC 6066: a DNS hostname in ASCII, no trailing dot; refuse anything else.
          if (
            !/^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/.test(name) ||
            name.length > 253
          )
            return bad("server_name is not a DNS name");
          return name.toLowerCase();
        }
        q += nl;
      }
      return "";
    }
    p += len;
  }
  return "";
}

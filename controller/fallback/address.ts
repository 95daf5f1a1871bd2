// Addresses the fallback must never be steered to. A Host that is an address in any notation a
// resolver accepts is refused before resolution: glibc's inet_aton takes 1 to 4 dot-separated
// parts, each decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes
// ("127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433" are all 127.0.0.1; inet_aton(3), "Numbers-
// and-dots notation"); IPv6 in any form, bracketed or not, mapped or not. A resolved address
// is refused when it is loopback, unspecified, link-local (cloud metadata lives there),
// multicast, private or shared space (RFC 1918, RFC 6598, RFC 4193), or the pod's own.
import { isIP } from "node:net";

const PART = /^(?:0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$/i;

/** Whether `host` (no port, no brackets needed) would be taken as an address by inet_aton or an IPv6 parser. */
export function addressLike(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "")
    .replace(/\.$/, "");
  if (!h) return false;
  if (isIP(h) || h.includes(":")) return true; // any IPv6 shape (a DNS name never holds ':')
  const parts = h.split(".");
  return parts.length <= 4 && parts.every((p) => PART.test(p));
}

/** IPv4 as a 32-bit number, or null. */
function v4(ip: string): number | null {
  if (isIP(ip) !== 4) return null;
  return ip.split(".").reduce((a, p) => a * 256 + Number(p), 0);
}
const inV4 = (n: number, cidr: string, len: number) => {
  const base = v4(cidr)!;
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return (n & mask) >>> 0 === (base & mask) >>> 0;
};
const V4_REFUSED: [string, number, string][] = [
  ["0.0.0.0", 8, "unspecified"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local (cloud metadata)"],
  ["10.0.0.0", 8, "private (RFC 1918)"],
  ["172.16.0.0", 12, "private (RFC 1918)"],
  ["192.168.0.0", 16, "private (RFC 1918)"],
  ["100.64.0.0", 10, "shared address space (RFC 6598)"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
  ["192.0.0.0", 24, "IETF protocol assignments (cloud metadata on some providers)"],
  ["198.18.0.0", 15, "benchmarking (RFC 2544)"],
  ["168.63.129.16", 32, "Azure host services"],
];
// Ranges a registry host may legitimately resolve to (ClusterIPs, Istio's auto-allocated
// ServiceEntry VIPs in 240.240.0.0/16): refused only for names outside the registry.
const REGISTRY_OK = new Set([
  "private (RFC 1918)",
  "shared address space (RFC 6598)",
  "reserved",
  "unique local (RFC 4193)",
]);

/**
 * Why a resolved address may not be an upstream of the fallback, or null when it may. For a
 * registry host (`registry`), cluster-internal space is expected; loopback, link-local,
 * unspecified, multicast and the pod's own addresses never are.
 */
export function refusedAddress(ip: string, own: ReadonlySet<string> = new Set(), registry = false): string | null {
  const why = refusedAny(ip, own);
  return why && registry && REGISTRY_OK.has(why) ? null : why;
}

function refusedAny(ip: string, own: ReadonlySet<string>): string | null {
  let a = ip
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "");
  if (own.has(a)) return "this pod's own address";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) a = mapped[1];
  const n = v4(a);
  if (n !== null) {
    if (own.has(a)) return "this pod's own address";
    for (const [c, len, why] of V4_REFUSED) if (inV4(n, c, len)) return why;
    return null;
  }
  if (isIP(a) !== 6) return "not an address";
  if (a === "::" || a === "::1") return a === "::" ? "unspecified" : "loopback";
  if (/^fe[89ab]/.test(a)) return "link-local";
  if (/^f[cd]/.test(a)) return "unique local (RFC 4193)";
  if (/^ff/.test(a)) return "multicast";
  if (/^fe[c-f]/.test(a)) return "site-local";
  if (/^::ffff:/.test(a) || /^64:ff9b:/.test(a) || /^2002:/.test(a)) return "translated IPv4";
  if (/^::[0-9a-f.]/.test(a)) return "IPv4-compatible";
  return null;
}

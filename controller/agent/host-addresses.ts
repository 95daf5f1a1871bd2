// The host's own addresses, read from the host network namespace through the host's PID 1 (the
// agent runs with hostPID, not hostNetwork): IPv4 local routes in /proc/1/net/fib_trie ("/32 host
// LOCAL" leaves) and IPv6 addresses in /proc/1/net/if_inet6 (proc(5)). Loopback and link-local
// addresses are left out: no pod traffic comes from them. Host-originated connections to a pod
// (kubelet probes, hostNetwork pods) leave from one of these.
import { readFileSync } from "node:fs";

export function hostAddresses(procRoot: string, max = 8): string[] {
  const out = new Set<string>();
  try {
    const fib = readFileSync(`${procRoot}/1/net/fib_trie`, "utf8").split("\n");
    for (let i = 1; i < fib.length; i++)
      if (/\/32 host LOCAL/.test(fib[i])) {
        const m = /(\d+\.\d+\.\d+\.\d+)\s*$/.exec(fib[i - 1]);
        if (m && !m[1].startsWith("127.")) out.add(m[1]);
      }
  } catch {
    /* no IPv4 */
  }
  try {
    for (const line of readFileSync(`${procRoot}/1/net/if_inet6`, "utf8").split("\n")) {
      const [hex, , , scope] = line.trim().split(/\s+/);
      if (!hex || hex.length !== 32 || scope !== "00") continue; // global scope only
      out.add(
        hex
          .match(/.{4}/g)!
          .map((g) => g.replace(/^0+(?=.)/, ""))
          .join(":"),
      );
    }
  } catch {
    /* no IPv6 */
  }
  return [...out].sort().slice(0, max);
}

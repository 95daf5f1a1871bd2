// CPU capability from /proc/cpuinfo, or from Node Feature Discovery's labels when NFD runs.
// cpuinfo's flag names are the kernel's X86_FEATURE_* names lowercased (arch/x86/include/asm/
// cpufeatures.h: AVX512IFMA → "avx512ifma", AVX512_VBMI2 → "avx512_vbmi2"); NFD labels a flag as
// feature.node.kubernetes.io/cpu-cpuid.<FLAG>=true with the cpuid library's names ("AVX512VBMI2")
// (NFD docs, usage/features: "cpu-cpuid.<cpuid-flag> | true").
export const NFD_CPUID = "feature.node.kubernetes.io/cpu-cpuid.";

/** What CryptoMB (Envoy contrib private_key_providers/cryptomb, Intel ipp-crypto multi-buffer
 * RSA/ECDSA) needs: AVX512F, DQ, BW, IFMA and VBMI2, as Envoy Gateway's CryptoMB task lists. */
export const CRYPTOMB_FLAGS: { nfd: string; cpuinfo: string }[] = [
  { nfd: "AVX512F", cpuinfo: "avx512f" },
  { nfd: "AVX512DQ", cpuinfo: "avx512dq" },
  { nfd: "AVX512BW", cpuinfo: "avx512bw" },
  { nfd: "AVX512IFMA", cpuinfo: "avx512ifma" },
  { nfd: "AVX512VBMI2", cpuinfo: "avx512_vbmi2" },
];

export interface CpuInfo {
  vendor: string;
  model: string;
  flags: Set<string>;
}

/** Flags every listed processor has (a node advertises what all its CPUs can do). */
export function parseCpuinfo(text: string): CpuInfo {
  let flags = null as Set<string> | null,
    vendor = "",
    model = "";
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const k = line.slice(0, i).trim(),
      v = line.slice(i + 1).trim();
    if (k === "vendor_id" && !vendor) vendor = v;
    else if (k === "model name" && !model) model = v;
    else if (k === "flags") {
      const f = new Set(v.split(/\s+/).filter(Boolean));
      flags = flags === null ? f : new Set([...flags].filter((x: string) => f.has(x)));
    }
  }
  return { vendor, model, flags: flags ?? new Set() };
}

/** NFD's cpuid flags on a node, or null when NFD has not labelled it. */
export function nfdFlags(labels: Record<string, string>): Set<string> | null {
  const keys = Object.keys(labels).filter((k) => k.startsWith(NFD_CPUID) && labels[k] === "true");
  return keys.length ? new Set(keys.map((k) => k.slice(NFD_CPUID.length))) : null;
}

export interface CryptoMbSupport {
  capable: boolean;
  missing: string[];
  source: "nfd" | "cpuinfo";
}

/** The CryptoMB flags (NFD names) this node has, from NFD when it labelled the node. */
export function presentFlags(cpu: CpuInfo, nfd: Set<string> | null): string[] {
  return CRYPTOMB_FLAGS.filter((f) => (nfd ? nfd.has(f.nfd) : cpu.flags.has(f.cpuinfo))).map((f) => f.nfd);
}

export function cryptomb(cpu: CpuInfo, nfd: Set<string> | null, arch: string): CryptoMbSupport {
  if (arch !== "x64") return { capable: false, missing: [`x86-64 (node is ${arch})`], source: nfd ? "nfd" : "cpuinfo" };
  const have = presentFlags(cpu, nfd);
  const missing = CRYPTOMB_FLAGS.map((f) => f.nfd).filter((f) => !have.includes(f));
  return { capable: missing.length === 0, missing, source: nfd ? "nfd" : "cpuinfo" };
}

// What this node can do, gathered once by the agent and published (labels.ts, status.ts):
// the loader's feature probe (every BPF program/attach/map/helper type, loaded for real by
// bpf/probe.c), kernel config, cgroup v2, CPU flags and Intel QAT devices. Gathering reads the
// host; evaluate() is pure, so recorded inputs (test/fixtures/nodes) give the same verdicts.
import { readFileSync, readdirSync, readlinkSync, existsSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { arch as osArch } from "node:os";
import { basename } from "node:path";
import { parseCpuinfo, nfdFlags, cryptomb, presentFlags, type CryptoMbSupport } from "./cpu-flags.js";

export interface ProbeCheck {
  group: "datapath" | "tcpstats" | "ambient" | "splice" | "node";
  feature: string;
  ok: boolean;
  detail?: string;
}
/** `meshtune-bpf probe` output (bpf/probe.c probe_print_json). */
export interface BpfProbe {
  supported: boolean;
  tcpstats: boolean;
  kernel: string;
  wakeupHazard: boolean;
  checks: ProbeCheck[];
}

export interface NodeInputs {
  probe: BpfProbe | { error: string };
  cpuinfo: string;
  arch: string;
  /** /proc/config.gz or /boot/config-<release>, when the kernel exposes one. */
  kernelConfig: string | null;
  /** Kernel driver names of PCI devices (QAT endpoints bind to 4xxx, c6xx, …). */
  pciDrivers: string[];
  /** The Node's current labels (NFD's are read from here). */
  labels: Record<string, string>;
}

export interface Verdict {
  ok: boolean;
  reason?: string;
  /** What a passing check could not see (e.g. the node's programs, without CAP_SYS_ADMIN). */
  note?: string;
}
export interface NodeFeatures {
  kernel: { release: string; version: string; wakeupHazard: boolean; config: Record<string, string> };
  datapath: Verdict;
  tcpstats: Verdict;
  /** Ambient capture (sk_lookup, UDP sendmsg/recvmsg hooks, sk_assign): istio-cni keeps ambient pods where false. */
  ambient: Verdict;
  /** Sockmap splicing: off (capture only) on kernels with known sockmap defects (bpf/probe.c). */
  splice: Verdict;
  cpu: { vendor: string; model: string; flags: string[]; source: "nfd" | "cpuinfo" };
  cryptomb: CryptoMbSupport;
  qat: { devices: number; drivers: string[] };
  nfd: boolean;
  checks: ProbeCheck[];
}

// Intel QAT endpoint drivers, by the names the kernel's qat_* modules register
// (drivers/crypto/intel/qat/qat_common/adf_accel_devices.h ADF_*_DEVICE_NAME).
const QAT_DRIVERS = new Set([
  "dh895xcc",
  "dh895xccvf",
  "c62x",
  "c62xvf",
  "c6xx",
  "c6xxvf",
  "c3xxx",
  "c3xxxvf",
  "4xxx",
  "4xxxvf",
  "420xx",
  "420xxvf",
]);
// The kernel options the datapath and probes are built on (informational: the probe decides).
const CONFIG_KEYS = [
  "CONFIG_BPF_SYSCALL",
  "CONFIG_CGROUP_BPF",
  "CONFIG_BPF_STREAM_PARSER",
  "CONFIG_DEBUG_INFO_BTF",
  "CONFIG_NET_SOCK_MSG",
  "CONFIG_BPF_JIT",
];

function readOr(path: string, fallback: string | null = null): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

/** Read this host's inputs; `probe` runs the loader's probe (injected so tests can record it). */
export function gatherNodeInputs(o: {
  proc: string;
  sys: string;
  probe: () => BpfProbe | { error: string };
  labels?: Record<string, string>;
  release?: string;
}): NodeInputs {
  let kernelConfig: string | null = null;
  try {
    kernelConfig = gunzipSync(readFileSync(`${o.proc}/config.gz`)).toString("utf8");
  } catch {
    /* CONFIG_IKCONFIG_PROC off */
  }
  if (kernelConfig === null && o.release) kernelConfig = readOr(`/boot/config-${o.release}`);
  const pciDrivers: string[] = [];
  const pci = `${o.sys}/bus/pci/devices`;
  if (existsSync(pci))
    for (const d of readdirSync(pci)) {
      try {
        pciDrivers.push(basename(readlinkSync(`${pci}/${d}/driver`)));
      } catch {
        /* no driver bound */
      }
    }
  return {
    probe: o.probe(),
    cpuinfo: readOr(`${o.proc}/cpuinfo`, "")!,
    arch: osArch(),
    kernelConfig,
    pciDrivers,
    labels: o.labels ?? {},
  };
}

function why(p: BpfProbe, group: "datapath" | "tcpstats" | "ambient" | "splice"): Verdict {
  const f = p.checks.find((c) => !c.ok && (c.group === group || c.group === "node"));
  if (f) return { ok: false, reason: `${f.feature}: ${f.detail ?? "not supported by this kernel"}` };
  const n = p.checks.find((c) => c.ok && c.detail && c.group === group);
  return n ? { ok: true, note: `${n.feature}: ${n.detail}` } : { ok: true };
}

export function evaluate(i: NodeInputs): NodeFeatures {
  const cpu = parseCpuinfo(i.cpuinfo);
  const nfd = nfdFlags(i.labels);
  const config: Record<string, string> = {};
  if (i.kernelConfig)
    for (const m of i.kernelConfig.matchAll(/^(CONFIG_[A-Z0-9_]+)=(.*)$/gm))
      if (CONFIG_KEYS.includes(m[1])) config[m[1]] = m[2];
  const qatDrivers = i.pciDrivers.filter((d) => QAT_DRIVERS.has(d));
  const relevant = presentFlags(cpu, nfd);
  const base = {
    cpu: {
      vendor: cpu.vendor,
      model: cpu.model,
      flags: relevant,
      source: nfd ? ("nfd" as const) : ("cpuinfo" as const),
    },
    cryptomb: cryptomb(cpu, nfd, i.arch),
    qat: { devices: qatDrivers.length, drivers: [...new Set(qatDrivers)] },
    nfd: nfd !== null,
  };
  if ("error" in i.probe) {
    const v = { ok: false, reason: `feature probe failed: ${i.probe.error}` };
    return {
      ...base,
      kernel: { release: "", version: "", wakeupHazard: true, config },
      datapath: v,
      tcpstats: v,
      ambient: v,
      splice: v,
      checks: [],
    };
  }
  const p = i.probe;
  const version = /^(\d+\.\d+(?:\.\d+)?)/.exec(p.kernel)?.[1] ?? "";
  return {
    ...base,
    kernel: { release: p.kernel, version, wakeupHazard: p.wakeupHazard, config },
    datapath: why(p, "datapath"),
    tcpstats: why(p, "tcpstats"),
    ambient: why(p, "ambient"),
    splice: why(p, "splice"),
    checks: p.checks,
  };
}

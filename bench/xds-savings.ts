// make bench (savings): real xDS bytes from Istio's own generator (the oracle, test/istio-oracle)
// for proxies without and with meshtune's Sidecars, on the bundled sample (meshtune's own
// `recommend` output) and on synthetic meshes of 1,000 and 10,000 services
// (test/fixtures/istio-mesh.ts). Per mesh: sampled workloads, each as a scoped proxy and an
// unscoped twin in the same scenario; CDS/LDS/RDS/EDS/ECDS bytes and counts (median per proxy and
// total over the sample); Istio's generation time per proxy (3 rounds, median and spread, same
// run); and the error of meshtune's savings estimate against the real bytes.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { IstioOracle, type OracleProxy, type ProxyAnswer, type XdsType } from "../test/helpers/istio-oracle.js";
import { scenario, service, pod } from "../test/istio/scenario.js";
import { syntheticMesh } from "../test/fixtures/istio-mesh.js";
import { generateSidecars, DEFAULT_GENERATE, type SidecarObj } from "../controller/sidecar/generate.js";
import { DEFAULT_COLLECTOR_HOST, DEFAULT_FALLBACK_HOST } from "../controller/sidecar/scope.js";
import { HostIndex } from "../controller/istio/hosts.js";
import { parseCatalog } from "../controller/sidecar/catalog.js";
import { virtualServiceRefs } from "../controller/istio/virtual-services.js";
import { estimateSavings } from "../controller/sidecar/savings.js";

type Obj = Record<string, unknown>;
const TYPES: XdsType[] = ["cds", "lds", "rds", "eds", "ecds"];
const ROUNDS = 3;
const MESHTUNE: Obj[] = [
  service("meshtune-system", "meshtune-controller", "10.95.0.10", [{ port: 8080 }]),
  service("meshtune-system", "meshtune-fallback", "10.95.0.11", [{ port: 80 }]),
];
const WASM = readFileSync("manifests/wasmplugin.yaml", "utf8")
  .split(/^---$/m)
  .filter((d) => /kind: WasmPlugin/.test(d));

interface Case {
  name: string;
  services: number;
  items: Obj[];
  sidecars: SidecarObj[];
  sample: SidecarObj[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
const total = (p: ProxyAnswer) => TYPES.reduce((s, t) => s + p.xds![t].bytes, 0);
const kb = (b: number) => (b / 1024).toFixed(1);

function sampleCase(): Case {
  const out = execFileSync(
    "node",
    [
      "build/meshtune.mjs",
      "recommend",
      "--access-log",
      "samples/bookinfo/access.log",
      "--catalog",
      "samples/bookinfo/catalog.json",
      "--min-requests",
      "20",
      "-o",
      "json",
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
  );
  const list = JSON.parse(out) as { items: Obj[] };
  const sidecars = list.items.filter((o) => o.kind === "Sidecar") as unknown as SidecarObj[];
  const items = (JSON.parse(readFileSync("samples/bookinfo/catalog.json", "utf8")) as { items: Obj[] }).items;
  return {
    name: "bundled sample",
    services: items.filter((o) => o.kind === "Service").length,
    items,
    sidecars,
    sample: sidecars,
  };
}

function syntheticCase(n: number, sampled: number): Case {
  const m = syntheticMesh(n);
  const items = m.items;
  const withMeshtune = [...items, ...MESHTUNE];
  const res = generateSidecars(m.graph, {
    ...DEFAULT_GENERATE,
    meshtuneHosts: [DEFAULT_COLLECTOR_HOST, DEFAULT_FALLBACK_HOST],
    egressProxy: { host: DEFAULT_FALLBACK_HOST, port: 80 },
    index: new HostIndex(parseCatalog({ items: withMeshtune })),
    virtualServices: virtualServiceRefs(items, "cluster.local"),
  });
  const step = Math.max(1, Math.floor(res.sidecars.length / sampled));
  return {
    name: `synthetic ${n}`,
    services: n,
    items,
    sidecars: res.sidecars,
    sample: res.sidecars.filter((_, i) => i % step === 0).slice(0, sampled),
  };
}

async function run(c: Case): Promise<void> {
  const oracle = IstioOracle.get();
  const proxies: OracleProxy[] = c.sample.flatMap((s, i) => {
    const labels = s.spec.workloadSelector.labels;
    const base = { namespace: s.metadata.namespace, xds: true };
    return [
      { ...base, name: `${s.metadata.name}-scoped`, ip: `10.251.${i >> 8}.${(i & 255) + 1}`, labels },
      {
        ...base,
        name: `${s.metadata.name}-unscoped`,
        ip: `10.252.${i >> 8}.${(i & 255) + 1}`,
        labels: { app: `${s.metadata.name}-unscoped-twin` },
      },
    ];
  });
  const pods = c.sample.map((s, i) =>
    pod(
      s.metadata.namespace,
      `${s.metadata.name}-scoped`,
      `10.251.${i >> 8}.${(i & 255) + 1}`,
      s.spec.workloadSelector.labels,
    ),
  );
  const req = scenario([...c.items, ...MESHTUNE, ...pods, ...(c.sample as unknown as Obj[])], proxies);
  req.configs += WASM.map((d) => `\n---\n${d}`).join("");
  const gen: { scoped: number[]; unscoped: number[] }[] = [];
  let last: ProxyAnswer[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const a = await oracle.answer(req);
    const bad = a.validation.filter((v) => v.error);
    if (bad.length) throw new Error(`Istio rejects ${JSON.stringify(bad[0])}`);
    last = a.proxies;
    gen.push({
      scoped: a.proxies.filter((_, i) => i % 2 === 0).map((p) => p.generateMs!),
      unscoped: a.proxies.filter((_, i) => i % 2 === 1).map((p) => p.generateMs!),
    });
  }
  const scoped = last.filter((_, i) => i % 2 === 0),
    unscoped = last.filter((_, i) => i % 2 === 1);
  // Check the work was done before printing: every proxy has listeners and clusters, and an
  // unscoped proxy sees at least one cluster per service.
  for (const p of last) if (!p.xds!.cds.count || !p.xds!.lds.count) throw new Error(`${p.name}: empty xDS`);
  if (median(unscoped.map((p) => p.xds!.cds.count)) < Math.min(c.services, 100))
    throw new Error(`${c.name}: unscoped proxies see too few clusters`);

  console.log(
    `\n${c.name}: ${c.services} services, ${c.sidecars.length} Sidecars, ${c.sample.length} workloads sampled`,
  );
  console.log("  type   unscoped (median/proxy)     scoped (median/proxy)    bytes saved");
  for (const t of [...TYPES, "total"] as const) {
    const b = (p: ProxyAnswer) => (t === "total" ? total(p) : p.xds![t].bytes);
    const n = (p: ProxyAnswer) => (t === "total" ? TYPES.reduce((s, x) => s + p.xds![x].count, 0) : p.xds![t].count);
    const bu = median(unscoped.map(b)),
      bs = median(scoped.map(b));
    console.log(
      `  ${t.padEnd(6)} ${kb(bu).padStart(10)} KiB ${String(median(unscoped.map(n))).padStart(6)} res ${kb(bs).padStart(10)} KiB ${String(median(scoped.map(n))).padStart(6)} res   ${bu ? (100 * (1 - bs / bu)).toFixed(1) : "0.0"} %`,
    );
  }
  const tu = unscoped.reduce((s, p) => s + total(p), 0),
    ts = scoped.reduce((s, p) => s + total(p), 0);
  console.log(`  total over the sample: ${kb(tu)} KiB → ${kb(ts)} KiB (−${(100 * (1 - ts / tu)).toFixed(1)} %)`);
  const gu = gen.map((g) => median(g.unscoped)),
    gs = gen.map((g) => median(g.scoped));
  const ratios = gen.map((g) => median(g.scoped) / median(g.unscoped));
  console.log(
    `  Istio generation per proxy: unscoped ${median(gu).toFixed(1)} ms (${spread(gu)}), scoped ${median(gs).toFixed(1)} ms (${spread(gs)}); scoped/unscoped ${median(ratios).toFixed(3)}× (${ratios.map((r) => r.toFixed(3)).join(", ")}; ${ROUNDS} rounds)`,
  );
  // meshtune's estimate (what `recommend` shows) against the real bytes.
  const catalog = parseCatalog({ items: [...c.items, ...MESHTUNE] });
  const errs: number[] = [],
    before: number[] = [],
    after: number[] = [];
  c.sample.forEach((s, i) => {
    const e = estimateSavings(s, catalog);
    const real = 100 * (1 - total(scoped[i]) / total(unscoped[i]));
    errs.push(e.savedPct.bytes - real);
    before.push(100 * (e.before.bytes / total(unscoped[i]) - 1));
    after.push(100 * (e.after.bytes / total(scoped[i]) - 1));
    if (process.env.CALIBRATE)
      for (const [side, m, p] of [
        ["before", e.before, unscoped[i]],
        ["after", e.after, scoped[i]],
      ] as const)
        console.log("CAL", JSON.stringify({ side, m, real: Object.fromEntries(TYPES.map((t) => [t, p.xds![t]])) }));
  });
  const worst = (xs: number[]) => xs.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a), 0).toFixed(1);
  console.log(
    `  meshtune's estimate (savings.ts, calibrated model) vs Istio: bytes unscoped ${median(before).toFixed(1)} % (worst ${worst(before)} %), scoped ${median(after).toFixed(1)} % (worst ${worst(after)} %); saved share ${median(errs).toFixed(2)} points (worst ${worst(errs)})`,
  );
  const bad = [...before, ...after].filter((e) => Math.abs(e) > 10);
  if (bad.length) console.log(`  WARNING: ${bad.length} estimates outside ±10 % of Istio's bytes`);
}

const which = process.argv.slice(2).filter((a) => /^\d$/.test(a));
const cases: (() => Case)[] = [sampleCase, () => syntheticCase(1000, 12), () => syntheticCase(10_000, 4)];
for (const [i, make] of cases.entries()) if (!which.length || which.includes(String(i))) await run(make());
IstioOracle.get().close();

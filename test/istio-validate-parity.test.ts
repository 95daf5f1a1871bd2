// meshtune's host validation (controller/istio/validate.ts) against Istio's own (the oracle runs
// the webhook's ValidateConfig on each Sidecar): on a corpus of hand-picked edge cases and seeded
// fuzz, every host meshtune accepts Istio accepts and every host it rejects Istio rejects. A
// disagreement fails with the host and both answers.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { IstioOracle } from "./helpers/istio-oracle.js";
import { scenario } from "./istio/scenario.js";
import { egressHostError, fqdnError } from "../controller/istio/validate.js";

const NS = [
  "*",
  ".",
  "~",
  "~ns",
  "~*",
  "~.",
  "ns",
  "NS",
  "Ns-1",
  "n_s",
  "",
  "-ns",
  "ns-",
  "a".repeat(63),
  "a".repeat(64),
];
const NAMES = [
  "*",
  "*.example.com",
  "*.com",
  "a.b",
  "*a.b",
  "a*.b",
  "*-a.b",
  "a.*.b",
  "**.b",
  "ratings.bookinfo.svc.cluster.local",
  "UPPER.Example.COM",
  "trailing.dot.",
  "two.dots..",
  "double..dot",
  ".lead.dot",
  "1.2.3.4",
  "10.96.0.1",
  "a.1",
  "1.a",
  "::1",
  "[::1]",
  "2001:db8::1",
  "x",
  "localhost",
  "xn--bcher-kva.example",
  "under_score.example.com",
  "-lead.example.com",
  "trail-.example.com",
  "a.b-",
  "*.",
  ".",
  "..",
  "a/b.c",
  "a b.c",
  "a%2e.b",
  "user@host.com",
  "host.com:80",
  `${"a".repeat(63)}.com`,
  `${"a".repeat(64)}.com`,
  `${"a.".repeat(126)}a`,
  `${"a.".repeat(127)}a`,
  `${"ab.".repeat(84)}com`,
];

function fuzz(n: number, seed: number): string[] {
  let r = seed;
  const rnd = () => (r = (r * 16807) % 2147483647) / 2147483647;
  const alphabet = "abcXYZ019.-*_~/ ";
  return Array.from({ length: n }, () => {
    const len = 1 + Math.floor(rnd() * 16);
    return Array.from({ length: len }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join("");
  });
}

const egressHosts = [
  ...NS.flatMap((ns) => NAMES.map((n) => `${ns}/${n}`)),
  ...NAMES, // no namespace part
  ...fuzz(400, 11),
  ...fuzz(200, 29).map((s) => `ns/${s}`),
];

const sidecar = (i: number, spec: Record<string, unknown>) => ({
  apiVersion: "networking.istio.io/v1",
  kind: "Sidecar",
  metadata: { name: `s-${i}`, namespace: "parity" },
  spec: { workloadSelector: { labels: { app: `a${i}` } }, ...spec },
});

test("Sidecar egress hosts: meshtune's validation agrees with Istio's on every host of the corpus", async () => {
  const objs = egressHosts.map((h, i) => sidecar(i, { egress: [{ hosts: [h] }] }));
  const ans = await IstioOracle.get().answer(scenario(objs, []));
  assert.is(ans.validation.length, egressHosts.length);
  const differ: string[] = [];
  let accepted = 0;
  ans.validation.forEach((v, i) => {
    const istio = !v.error;
    const ours = egressHostError(egressHosts[i]) === null;
    accepted += istio ? 1 : 0;
    if (istio !== ours)
      differ.push(
        `${JSON.stringify(egressHosts[i])}: Istio ${v.error ?? "accepts"}; meshtune ${egressHostError(egressHosts[i]) ?? "accepts"}`,
      );
  });
  assert.equal(differ, [], differ.join("\n"));
  assert.ok(accepted > 50 && accepted < egressHosts.length - 200, `a corpus with both answers (${accepted} accepted)`);
});

// Istio accepts a single-label egressProxy host and uses it literally as a cluster name that no
// proxy has (test/istio-divergences.test.ts); meshtune refuses one on purpose. That is the only
// allowed difference: meshtune never accepts a host Istio rejects.
test("egressProxy host: meshtune accepts only what Istio accepts, and is stricter only for single labels", async () => {
  const hosts = [...NAMES, ...fuzz(300, 41)];
  const objs = hosts.map((h, i) =>
    sidecar(i, {
      egress: [{ hosts: ["./*"] }],
      outboundTrafficPolicy: { mode: "ALLOW_ANY", egressProxy: { host: h, port: { number: 80 } } },
    }),
  );
  const ans = await IstioOracle.get().answer(scenario(objs, []));
  const differ: string[] = [];
  ans.validation.forEach((v, i) => {
    const ours = fqdnError(hosts[i]);
    const singleLabel = !v.error && ours !== null && !hosts[i].includes(".") && ours.includes("fully qualified");
    if (!v.error !== (ours === null) && !singleLabel)
      differ.push(`${JSON.stringify(hosts[i])}: Istio ${v.error ?? "accepts"}; meshtune ${ours ?? "accepts"}`);
  });
  assert.equal(differ, [], differ.join("\n"));
});

test.run();

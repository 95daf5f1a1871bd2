// Mutation fuzzing with fixed seeds (reproducible; bounded to a few seconds): the access-log
// parser and the report validator take every mutation of a real corpus (test/corpus/) without
// throwing, and what they accept keeps the invariants the rest of meshtune relies on.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseText } from "../controller/accesslog/text-format.js";
import { readLines } from "../controller/accesslog/lines.js";
import { validateReport } from "../controller/collector/report-schema.js";
import { reportContentError } from "../controller/collector/report-content.js";
import { parseCluster } from "../controller/model/cluster-name.js";
import { egressHostError, fqdnError } from "../controller/istio/validate.js";
import { HostIndex } from "../controller/istio/hosts.js";
import { ROOT } from "./helpers/cli.js";

/** mulberry32: small, fast, seedable. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const NASTY = [
  '"',
  '" "',
  "\r",
  "\n",
  "\t",
  " ",
  "\\",
  "*",
  "\u0000",
  "é",
  "\u2028",
  "]",
  "[",
  "-",
  "|",
  "/",
  "../",
  "%",
  "{",
  "}",
  ":",
  "9".repeat(20),
  "a".repeat(300),
];

function mutate(s: string, r: () => number): string {
  const pick = <T>(a: T[]) => a[Math.floor(r() * a.length)];
  const at = Math.floor(r() * (s.length + 1));
  switch (Math.floor(r() * 6)) {
    case 0:
      return s.slice(0, at) + pick(NASTY) + s.slice(at); // insert
    case 1:
      return s.slice(0, at) + s.slice(at + 1 + Math.floor(r() * 8)); // delete
    case 2:
      return s.slice(0, at) + String.fromCharCode(Math.floor(r() * 128)) + s.slice(at + 1); // replace
    case 3: {
      const b = Math.floor(r() * s.length);
      return s.slice(0, at) + s.slice(b, b + 20) + s.slice(at);
    } // duplicate
    case 4:
      return s.slice(0, at); // truncate
    default:
      return s.replace(/"[^"]*"/g, (m) => (r() < 0.2 ? `"${pick(NASTY)}${m.slice(1)}` : m)); // quotes inside quoted fields
  }
}

const corpus = readFileSync(join(ROOT, "test/corpus/access-log.txt"), "utf8").split("\n").filter(Boolean);

test("access-log parser: 20,000 mutations of real lines never throw; accepted records are well-formed", () => {
  const r = rng(0x5eed);
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    let line = corpus[i % corpus.length];
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) line = mutate(line, r);
    const rec = parseText(line);
    if (!rec) continue;
    accepted++;
    assert.ok(Number.isInteger(rec.code) && rec.code >= 0, line);
    assert.is(typeof rec.cluster, "string");
    assert.not.match(rec.authority, /"/, `authority never carries a quote: ${line}`);
    assert.not.match(rec.upstreamHost, /"/, line);
  }
  assert.ok(accepted > 2000, `some mutations stay valid (${accepted})`);
});

test("quotes inside client-controlled fields do not drop or shift a line", () => {
  const base = corpus.find((l) => l.includes("Mozilla/5.0") && l.includes("outbound|9080||details"))!; // TEXT 1.9+: … "XFF" "UA" "request id" "authority" "upstream host" cluster …
  const want = parseText(base)!;
  for (const ua of ['Mozilla "quoted" UA', 'a" "b', '"', '" "" "', 'x" "y" "z']) {
    const line = base.replace('"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"', `"${ua}"`);
    assert.equal(parseText(line), want, ua);
  }
  const xff = base.replace('"-" "Mozilla', '"10.0.0.1, "evil" 10.0.0.2" "Mozilla');
  assert.equal(parseText(xff), want);
  const path = base.replace("/details/0", '/details/"0"');
  assert.is(parseText(path)?.cluster, want.cluster, "a quote in the path");
});

test("line endings: LF, CRLF and CR-only all split lines, also across chunk boundaries", async () => {
  for (const sep of ["\n", "\r\n", "\r"]) {
    const text = corpus.join(sep) + sep;
    for (const size of [7, 64, 1 << 20]) {
      const chunks = async function* () {
        const b = Buffer.from(text);
        for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
      };
      const got: string[] = [];
      for await (const l of readLines(chunks())) if ("text" in l) got.push(l.text);
      assert.equal(got, corpus, `${JSON.stringify(sep)} / ${size}`);
    }
  }
});

test("report validator: 20,000 mutations never throw; what passes is safe to turn into config", () => {
  const seed = readFileSync(join(ROOT, "test/corpus/report-v1.json"), "utf8");
  const index = new HostIndex([
    { namespace: "bookinfo", host: "*.googleapis.com", vip: false, ports: [], endpoints: 1, exportTo: [] },
  ]);
  const r = rng(0xfeed);
  let passed = 0;
  for (let i = 0; i < 20_000; i++) {
    let body = seed;
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) body = mutate(body, r);
    let v: unknown;
    try {
      v = JSON.parse(body);
    } catch {
      continue;
    }
    const s = validateReport(v);
    if (!s.ok) {
      assert.ok(s.reason && s.detail.length < 400);
      continue;
    }
    if (reportContentError(s.report, s.report.proxy.namespace, "cluster.local", index)) continue;
    passed++;
    for (const e of s.report.edges) {
      const c = parseCluster(e.cluster);
      if (c.kind === "outbound") {
        assert.ok(!c.host.includes("*") ? fqdnError(c.host) === null : index.has(c.host), e.cluster);
        assert.is(egressHostError(`${s.report.proxy.namespace}/${c.host}`), null, e.cluster);
      }
      assert.not.match(e.authority ?? "", /[\s"*]/);
    }
  }
  assert.ok(passed > 500, `mutations that stay valid are accepted (${passed})`);
});

test.run();

// Issue 23, offline inputs an attacker can write: access-log authorities and SNIs end up in
// printed objects only when they pass Istio's host validation. Item numbers refer to issue 23.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { meshtune } from "../helpers/cli.js";

const line = (authority: string, sni = "-") =>
  `[pod/reviews-v3-84779c7bbc-m8w9s/istio-proxy] [2026-11-20T10:00:06.830Z] "POST /events HTTP/1.1" 200 - via_upstream - "-" 0 2864 15 14 "-" "curl/8.5.0" "9c59b654-b743-4717-12be-7f0c846c58e6" "${authority}" "203.0.113.7:80" PassthroughCluster 10.244.1.50:52525 203.0.113.7:80 10.244.1.50:55059 ${sni} allow_any`;

test("item 25: suggested ServiceEntries never carry a host Istio would refuse (markup, spaces, wildcards)", () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-offline-"));
  const log = join(dir, "a.log");
  writeFileSync(
    log,
    [line("evil<img src=x onerror=alert(1)>.example.com"), line("*.example.com"), line("telemetry.example.net")].join(
      "\n",
    ) + "\n",
  );
  const r = meshtune(["recommend", "--access-log", log, "--default-namespace", "shop"]);
  assert.is(r.code, 0, r.stderr);
  const suggested = r.stderr.slice(r.stderr.indexOf("suggested ServiceEntries"));
  assert.ok(suggested.length > 0, r.stderr);
  const hosts = parseAllDocuments(suggested.slice(suggested.indexOf("---")))
    .map((d) => d.toJS() as { kind?: string; spec?: { hosts?: string[] } } | null)
    .filter((o) => o?.kind === "ServiceEntry")
    .flatMap((o) => o!.spec!.hosts ?? []);
  assert.ok(hosts.includes("telemetry.example.net"), hosts.join(","));
  assert.ok(hosts.includes("ip-203-0-113-7.external"), "the invalid names are suggested by address only");
  for (const h of hosts) assert.match(h, /^[a-z0-9.-]+$/, h);
});

test.run();

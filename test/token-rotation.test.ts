// A projected service-account token is rotated by the kubelet before it expires (an atomic
// symlink swap in the volume). The agent and the fallback post with whatever the file holds now,
// and retry once after a 401 with a token that changed since (issue 30 item 2).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createServer, type Server } from "node:http";
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TokenFile } from "../controller/collector/token-file.js";
import { postReport } from "../controller/collector/post-report.js";

test("a rotated token file is used for the next report; a 401 that raced the rotation is retried once", async () => {
  const dir = mkdtempSync(join(tmpdir(), "meshtune-token-"));
  // The kubelet's layout: token -> ..data/token, ..data -> a timestamped dir, swapped atomically.
  const put = (gen: string, value: string) => {
    const d = join(dir, `..${gen}`);
    mkdirSync(d);
    writeFileSync(join(d, "token"), value);
    symlinkSync(`..${gen}`, join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
  };
  put("2026_12_07_01", "old-token");
  symlinkSync("..data/token", join(dir, "token"));
  let valid = "old-token";
  const seen: string[] = [];
  const srv: Server = createServer((req, res) => {
    seen.push(String(req.headers.authorization));
    req.resume();
    res.writeHead(req.headers.authorization === `Bearer ${valid}` ? 202 : 401).end("{}");
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/v1/reports`;
  try {
    const t = new TokenFile(join(dir, "token"));
    assert.equal(await postReport(url, {}, t.headers(), 2000, t.reauth), { outcome: "accepted" });
    // Rotation: the server already wants the new token; the file changes.
    valid = "new-token";
    put("2026_12_07_02", "new-token");
    assert.equal(await postReport(url, {}, t.headers(), 2000, t.reauth), { outcome: "accepted" });
    assert.is(seen.at(-1), "Bearer new-token", "the next report carries the rotated token");
    // A token the server stops accepting without a rotation: one 401, no resend loop.
    valid = "other";
    const r = await postReport(url, {}, t.headers(), 2000, t.reauth);
    assert.is(r.outcome, "refused");
    assert.is(seen.filter((s) => s === "Bearer new-token").length, 2, "not resent: the token had not changed");
  } finally {
    srv.close();
  }
});

test.run();

import { test } from "uvu";
import * as assert from "uvu/assert";
import { Readable } from "node:stream";
import { readLines, type Line } from "../controller/accesslog/lines.js";

async function collect(chunks: (string | Buffer)[], max?: number): Promise<Line[]> {
  const out: Line[] = [];
  for await (const l of readLines(Readable.from(chunks.map((c) => Buffer.from(c))), max)) out.push(l);
  return out;
}

test("splits across chunk boundaries and keeps a final unterminated line", async () => {
  const r = await collect(["ab", "c\nde", "f\n\ng", "h"]);
  assert.equal(r, [{ text: "abc" }, { text: "def" }, { text: "" }, { text: "gh" }]);
});

test("over-long lines are skipped and sized, neighbours survive", async () => {
  const r = await collect(["ok1\n", "x".repeat(50), "y".repeat(50), "\nok2\n", "z".repeat(200)], 64);
  assert.equal(r, [{ text: "ok1" }, { tooLong: 100 }, { text: "ok2" }, { tooLong: 200 }]);
});

test("a 10 MB single line is skipped without buffering it", async () => {
  const mb = Buffer.alloc(1 << 20, 0x61);
  const chunks: Buffer[] = [Buffer.from("first\n"), ...Array.from({ length: 10 }, () => mb), Buffer.from("\nlast\n")];
  const before = process.memoryUsage().arrayBuffers;
  const out: Line[] = [];
  for await (const l of readLines(Readable.from(chunks))) out.push(l);
  assert.equal(out, [{ text: "first" }, { tooLong: 10 << 20 }, { text: "last" }]);
  // The reader never held more than one chunk plus the 64 KiB cap of its own.
  assert.ok(process.memoryUsage().arrayBuffers - before < 4 << 20);
});

test("UTF-8 split across chunks decodes intact", async () => {
  const b = Buffer.from("héllo\n");
  const r = await collect([b.subarray(0, 2), b.subarray(2)]);
  assert.equal(r, [{ text: "héllo" }]);
});

test.run();

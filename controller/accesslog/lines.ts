// Streaming line splitter with a hard cap on line length, so memory stays
// constant whatever the input: an over-long line is skipped while it streams
// past, never buffered whole.
import { promises as fs, createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";

export const MAX_LINE_BYTES = 64 * 1024;

/** A line, or the length of one too long to keep; `mark` is what `keep` said of it (when given). */
export type Line = { text: string; mark?: number } | { tooLong: number };

/** Lines in batches, one batch per input chunk: one await per chunk rather than per line keeps
 * millions of short-lived objects from surviving across awaits (speed, and a flat RSS). `keep`,
 * given, decides from a line's bytes whether it is wanted at all (0: never made a string; a
 * learner shard skips most lines: accesslog/parallel.ts), and marks the wanted ones. */
export async function* readLineBatches(
  input: AsyncIterable<Buffer>,
  maxBytes = MAX_LINE_BYTES,
  keep?: (b: Buffer, start: number, end: number) => number,
): AsyncGenerator<Line[]> {
  let carry: Buffer | null = null; // partial line from the previous chunk
  let skipping = 0; // > 0 while discarding an over-long line
  let lastWasCR = false; // a CR ended the previous chunk: a leading LF completes that CRLF
  for await (const chunk of input) {
    const batch: Line[] = [];
    let start = lastWasCR && chunk[0] === 10 ? 1 : 0;
    lastWasCR = false;
    // Line ends: LF, CRLF, or a lone CR (old Mac-style files). CR is rare: look for it only if present.
    let cr = chunk.indexOf(13, start);
    for (;;) {
      let nl = chunk.indexOf(10, start);
      if (cr >= 0 && cr < start) cr = chunk.indexOf(13, start);
      if (cr >= 0 && (nl < 0 || cr < nl)) nl = cr;
      if (nl < 0) break;
      if (skipping > 0) {
        batch.push({ tooLong: skipping + nl - start });
        skipping = 0;
      } else if (carry) {
        const total = carry.length + nl - start;
        if (total > maxBytes) batch.push({ tooLong: total });
        else {
          const b = Buffer.concat([carry, chunk.subarray(start, nl)]);
          if (!keep) batch.push({ text: b.toString("utf8") });
          else {
            const mark = keep(b, 0, b.length);
            if (mark) batch.push({ text: b.toString("utf8"), mark });
          }
        }
        carry = null;
      } else if (nl - start > maxBytes) {
        batch.push({ tooLong: nl - start });
      } else if (!keep) {
        batch.push({ text: chunk.toString("utf8", start, nl) });
      } else {
        const mark = keep(chunk, start, nl);
        if (mark) batch.push({ text: chunk.toString("utf8", start, nl), mark });
      }
      if (chunk[nl] === 13) {
        if (nl + 1 === chunk.length) lastWasCR = true;
        start = chunk[nl + 1] === 10 ? nl + 2 : nl + 1;
      } else start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.length - start;
      if (skipping > 0) skipping += rest;
      else if ((carry?.length ?? 0) + rest > maxBytes) {
        skipping = (carry?.length ?? 0) + rest;
        carry = null;
      } else carry = carry ? Buffer.concat([carry, chunk.subarray(start)]) : Buffer.from(chunk.subarray(start));
    }
    if (batch.length) yield batch;
  }
  if (skipping > 0) yield [{ tooLong: skipping }];
  else if (carry && carry.length > 0) {
    const mark = keep ? keep(carry, 0, carry.length) : 1;
    if (mark) yield [keep ? { text: carry.toString("utf8"), mark } : { text: carry.toString("utf8") }];
  }
}

/** One line at a time (tests, small inputs). */
export async function* readLines(input: AsyncIterable<Buffer>, maxBytes = MAX_LINE_BYTES): AsyncGenerator<Line> {
  for await (const batch of readLineBatches(input, maxBytes)) yield* batch;
}

/**
 * A file's bytes (its first `limit`) through one reused buffer: no per-chunk garbage, so RSS stays flat instead of
 * waiting for the GC to free a fresh 1 MB buffer per read. Safe because readLineBatches copies
 * everything it keeps (strings, carry) before asking for the next chunk.
 */
export async function* fileChunks(path: string, size = 1 << 20, limit = Infinity): AsyncGenerator<Buffer> {
  const fh = await fs.open(path, "r");
  try {
    const buf = Buffer.allocUnsafe(size);
    for (let left = limit; left > 0;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(size, left), null);
      if (bytesRead === 0) return;
      left -= bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/** gzip's magic bytes (RFC 1952 2.3.1: ID1 0x1f, ID2 0x8b): `kubectl logs … | gzip`. */
export const isGzip = (head: Buffer) => head[0] === 0x1f && head[1] === 0x8b;

/** A file's bytes, gunzipped when it starts with gzip's magic bytes. */
export async function* inputChunks(path: string): AsyncGenerator<Buffer> {
  const fh = await fs.open(path, "r");
  const head = Buffer.alloc(2);
  try {
    await fh.read(head, 0, 2, 0);
  } finally {
    await fh.close();
  }
  if (isGzip(head)) yield* createReadStream(path).pipe(createGunzip());
  else yield* fileChunks(path);
}

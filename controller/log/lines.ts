// Streaming line splitter with a hard cap on line length, so memory stays
// constant whatever the input: an over-long line is skipped while it streams
// past, never buffered whole.
import type { Readable } from "node:stream";

export const MAX_LINE_BYTES = 64 * 1024;

export type Line = { text: string } | { tooLong: number };

export async function* readLines(input: Readable, maxBytes = MAX_LINE_BYTES): AsyncGenerator<Line> {
  let carry: Buffer | null = null; // partial line from the previous chunk
  let skipping = 0;                // > 0 while discarding an over-long line
  for await (const chunk of input as AsyncIterable<Buffer>) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      if (skipping > 0) {
        yield { tooLong: skipping + nl - start };
        skipping = 0;
      } else if (carry) {
        const total = carry.length + nl - start;
        if (total > maxBytes) yield { tooLong: total };
        else yield { text: Buffer.concat([carry, chunk.subarray(start, nl)]).toString("utf8") };
        carry = null;
      } else if (nl - start > maxBytes) {
        yield { tooLong: nl - start };
      } else {
        yield { text: chunk.toString("utf8", start, nl) };
      }
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.length - start;
      if (skipping > 0) skipping += rest;
      else if ((carry?.length ?? 0) + rest > maxBytes) {
        skipping = (carry?.length ?? 0) + rest;
        carry = null;
      } else carry = carry ? Buffer.concat([carry, chunk.subarray(start)]) : Buffer.from(chunk.subarray(start));
    }
  }
  if (skipping > 0) yield { tooLong: skipping };
  else if (carry && carry.length > 0) yield { text: carry.toString("utf8") };
}

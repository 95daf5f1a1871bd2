// Istio's default TEXT access-log format (meshConfig.accessLogEncoding TEXT).
// Since 1.9:
//   [%START_TIME%] "%METHOD% %PATH% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS%
//   %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
//   %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %UPSTREAM_SERVICE_TIME% "%XFF%" "%UA%" "%REQUEST_ID%"
//   "%AUTHORITY%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL% %DOWNSTREAM_LOCAL%
//   %DOWNSTREAM_REMOTE% %REQUESTED_SERVER_NAME% %ROUTE_NAME%
// Older releases differ in the middle and may lack the trailing SNI/route fields, so the
// parser anchors on the structure instead of positions: request line first, then the
// last five quoted fields (XFF, UA, request id, authority, upstream host), then the
// bare fields after them.
import { type AccessRecord, dash, num } from "./record.js";

const QUOTE = 34, SPACE = 32, LBRACK = 91;

// Token boundaries go into reused typed arrays: no per-token allocation on the hot path;
// only the fields meshtune needs are sliced out.
const MAX_TOK = 64;
const ts = new Int32Array(MAX_TOK), te = new Int32Array(MAX_TOK), tq = new Uint8Array(MAX_TOK);

/** Split into bare, "quoted" (may hold spaces) and a leading [bracketed] token; returns the count or -1. */
function tokenize(line: string): number {
  const n = line.length;
  let i = 0, k = 0;
  while (i < n) {
    const c = line.charCodeAt(i);
    if (c === SPACE || c === 9 || c === 13) { i++; continue; }
    if (k === MAX_TOK) return -1;
    if (c === QUOTE || (c === LBRACK && k === 0)) {
      const end = line.indexOf(c === QUOTE ? '"' : "]", i + 1);
      if (end < 0) return -1;
      ts[k] = i + 1; te[k] = end; tq[k] = c === QUOTE ? 1 : 0;
      i = end + 1;
    } else {
      let j = i + 1;
      for (; j < n; j++) { const d = line.charCodeAt(j); if (d === SPACE || d === 9 || d === 13) break; }
      ts[k] = i; te[k] = j; tq[k] = 0;
      i = j;
    }
    k++;
  }
  return k;
}

// Timestamps share their leading seconds with neighbouring lines: parse those once.
let lastSec = "", lastSecMs = NaN;
function parseTime(s: string): number {
  // 2026-11-20T10:00:03.796Z
  if (s.length >= 20 && s.charCodeAt(19) === 46 /* . */ && s.charCodeAt(s.length - 1) === 90 /* Z */) {
    const sec = s.slice(0, 19);
    if (sec !== lastSec) { lastSec = sec; lastSecMs = Date.parse(sec + "Z"); }
    const frac = s.slice(20, s.length - 1);
    return lastSecMs + Math.floor(Number(frac) / 10 ** (frac.length - 3));
  }
  return Date.parse(s);
}

/** Parse one TEXT line; null when the line is not an Istio access-log entry. */
export function parseText(line: string): AccessRecord | null {
  if (line.charCodeAt(0) !== LBRACK) return null;
  const n = tokenize(line);
  if (n < 14 || tq[1] !== 1) return null;
  const tok = (k: number) => line.slice(ts[k], te[k]);
  const startMs = parseTime(tok(0));
  if (Number.isNaN(startMs)) return null;
  const req = tok(1).split(" ");
  if (req.length !== 3) return null;
  // The upstream-host quote is the last quoted token; the four before it are quoted too.
  let uh = -1;
  for (let k = n - 1; k > 1; k--) if (tq[k]) { uh = k; break; }
  if (uh < 7 || n - uh - 1 < 4) return null;
  for (let k = uh - 4; k < uh; k++) if (!tq[k]) return null;
  // Bare numeric fields before XFF: ... BYTES_RECEIVED BYTES_SENT DURATION UPSTREAM_SERVICE_TIME
  if (tq[uh - 6]) return null;
  const codeTok = tok(2);
  const code = codeTok === "-" ? 0 : Number(codeTok);
  if (!Number.isInteger(code)) return null;
  const isTcp = req[0] === "-";
  return {
    startMs,
    method: isTcp ? "" : req[0],
    protocol: dash(req[2]),
    code,
    flags: tq[3] ? "-" : tok(3),
    durationMs: num(tok(uh - 6)),
    authority: dash(tok(uh - 1)),
    upstreamHost: dash(tok(uh)),
    cluster: dash(tok(uh + 1)),
    downstreamLocal: dash(tok(uh + 3)),
    sni: uh + 5 < n ? dash(tok(uh + 5)) : "",
  };
}

// Istio's default TEXT access-log format (meshConfig.accessLogEncoding TEXT).
// Since 1.9:
//   [%START_TIME%] "%METHOD% %PATH% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS%
//   %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
//   %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %UPSTREAM_SERVICE_TIME% "%XFF%" "%UA%" "%REQUEST_ID%"
//   "%AUTHORITY%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL% %DOWNSTREAM_LOCAL%
//   %DOWNSTREAM_REMOTE% %REQUESTED_SERVER_NAME% %ROUTE_NAME%
// Older releases differ in the middle and may lack the trailing SNI/route fields, so the
// parser anchors on structure, not positions. Envoy's TEXT formatter does not escape quotes,
// so XFF, User-Agent and request id (client-controlled) may hold `"` or `" "`; the parser
// never reads them. From the left it takes the request line and the bare fields up to XFF:
// the first quoted token after four bare ones that follow another quoted field (1.9+:
// "transport failure reason"; older: it or the mixer status). From the right it takes the
// bare fields after the last quote, the upstream host and the authority, which Envoy only
// accepts without quotes (HeaderUtility::authorityIsValid) and which never hold one.
import { type AccessRecord, dash, num } from "./record.js";

const QUOTE = 34,
  SPACE = 32,
  LBRACK = 91;
const isSpace = (c: number) => c === SPACE || c === 9 || c === 13;

// Head token boundaries go into reused typed arrays: no per-token allocation on the hot path.
const MAX_TOK = 32;
const ts = new Int32Array(MAX_TOK),
  te = new Int32Array(MAX_TOK),
  tq = new Uint8Array(MAX_TOK);
// The request line ends at the quote followed by the response code ("- - -" for TCP), even if the path holds a quote.
const REQ_END = /" (?:\d{1,3}|-) /g;

/** Tokenize the head up to and including XFF's opening quote; returns XFF's token index or -1. */
function headTokens(line: string): number {
  const n = line.length;
  let i = 0,
    k = 0;
  while (i < n) {
    const c = line.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (k === MAX_TOK) return -1;
    if (c === QUOTE || (c === LBRACK && k === 0)) {
      let end: number;
      if (c === LBRACK) end = line.indexOf("]", i + 1);
      else if (k === 1) {
        REQ_END.lastIndex = i + 1;
        const m = REQ_END.exec(line);
        end = m ? m.index : -1;
      } else end = line.indexOf('"', i + 1);
      if (end < 0) return -1;
      ts[k] = i + 1;
      te[k] = end;
      tq[k] = c === QUOTE ? 1 : 0;
      if (tq[k] && k >= 7 && tq[k - 5] && !tq[k - 4] && !tq[k - 3] && !tq[k - 2] && !tq[k - 1]) return k;
      i = end + 1;
    } else {
      let j = i + 1;
      while (j < n && !isSpace(line.charCodeAt(j))) j++;
      ts[k] = i;
      te[k] = j;
      tq[k] = 0;
      i = j;
    }
    k++;
  }
  return -1;
}

// The tail's bare fields (after the upstream host's closing quote), split on spaces and tabs into
// reused arrays like the head's tokens; returns how many (at most MAX_TOK).
const fs = new Int32Array(MAX_TOK),
  fe = new Int32Array(MAX_TOK);
function tailFields(line: string, from: number, to: number): number {
  let k = 0,
    i = from;
  while (i < to && k < MAX_TOK) {
    while (i < to && (line.charCodeAt(i) === SPACE || line.charCodeAt(i) === 9)) i++;
    if (i >= to) break;
    let j = i + 1;
    while (j < to && line.charCodeAt(j) !== SPACE && line.charCodeAt(j) !== 9) j++;
    fs[k] = i;
    fe[k] = j;
    k++;
    i = j;
  }
  return k;
}

// Timestamps share their leading seconds with neighbouring lines: parse those once.
let lastSec = "",
  lastSecMs = NaN;
function parseTime(s: string): number {
  // 2026-11-20T10:00:03.796Z
  if (s.length >= 20 && s.charCodeAt(19) === 46 /* . */ && s.charCodeAt(s.length - 1) === 90 /* Z */) {
    const sec = s.slice(0, 19);
    if (sec !== lastSec) {
      lastSec = sec;
      lastSecMs = Date.parse(sec + "Z");
    }
    const frac = s.slice(20, s.length - 1);
    return lastSecMs + Math.floor(Number(frac) / 10 ** (frac.length - 3));
  }
  return Date.parse(s);
}

/** Parse one TEXT line; null when the line is not an Istio access-log entry. */
export function parseText(line: string): AccessRecord | null {
  if (line.charCodeAt(0) !== LBRACK) return null;
  const xff = headTokens(line);
  if (xff < 0 || tq[1] !== 1) return null;
  const tok = (k: number) => line.slice(ts[k], te[k]);
  const startMs = parseTime(tok(0));
  if (Number.isNaN(startMs)) return null;
  // "METHOD PATH PROTOCOL" (or "- - -" for TCP): exactly three space-separated parts.
  const r0 = ts[1],
    r1 = te[1];
  const sp1 = line.indexOf(" ", r0),
    sp2 = sp1 < 0 || sp1 >= r1 ? -1 : line.indexOf(" ", sp1 + 1);
  if (sp2 < 0 || sp2 >= r1) return null;
  const sp3 = line.indexOf(" ", sp2 + 1);
  if (sp3 >= 0 && sp3 < r1) return null;
  // Tail, from the right: bare fields, then "authority" "upstream host".
  let end = line.length;
  while (end > 0 && isSpace(line.charCodeAt(end - 1))) end--;
  const uh2 = line.lastIndexOf('"', end - 1);
  const uh1 = uh2 > 0 ? line.lastIndexOf('"', uh2 - 1) : -1;
  if (uh1 < 2 || line.charCodeAt(uh1 - 1) !== SPACE || line.charCodeAt(uh1 - 2) !== QUOTE) return null;
  const au2 = uh1 - 2,
    au1 = line.lastIndexOf('"', au2 - 1);
  if (au1 < te[xff]) return null; // the authority must come after XFF's opening quote
  const nt = tailFields(line, uh2 + 1, end);
  if (nt < 4) return null;
  const codeTok = tok(2);
  const code = codeTok === "-" ? 0 : Number(codeTok);
  if (!Number.isInteger(code)) return null;
  const isTcp = sp1 === r0 + 1 && line.charCodeAt(r0) === 45; /* "-" */
  const field = (k: number) => dash(line.slice(fs[k], fe[k]));
  return {
    startMs,
    method: isTcp ? "" : line.slice(r0, sp1),
    protocol: dash(line.slice(sp2 + 1, r1)),
    code,
    flags: tq[3] ? "-" : tok(3),
    durationMs: num(tok(xff - 2)),
    authority: dash(line.slice(au1 + 1, au2)),
    upstreamHost: dash(line.slice(uh1 + 1, uh2)),
    cluster: field(0),
    downstreamLocal: field(2),
    sni: nt > 4 ? field(4) : "",
    route: nt > 5 ? field(5) : "",
  };
}

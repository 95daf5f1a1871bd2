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

interface Tok { s: string; q: boolean }

/** Split into bare, "quoted" (may hold spaces) and [bracketed] tokens. */
function tokenize(line: string): Tok[] | null {
  const out: Tok[] = [];
  const n = line.length;
  let i = 0;
  while (i < n) {
    const c = line.charCodeAt(i);
    if (c === SPACE || c === 9 || c === 13) { i++; continue; }
    if (c === QUOTE) {
      const end = line.indexOf('"', i + 1);
      if (end < 0) return null;
      out.push({ s: line.slice(i + 1, end), q: true });
      i = end + 1;
    } else if (c === LBRACK && out.length === 0) {
      const end = line.indexOf("]", i + 1);
      if (end < 0) return null;
      out.push({ s: line.slice(i + 1, end), q: false });
      i = end + 1;
    } else {
      let j = i + 1;
      while (j < n && line.charCodeAt(j) !== SPACE && line.charCodeAt(j) !== 9 && line.charCodeAt(j) !== 13) j++;
      out.push({ s: line.slice(i, j), q: false });
      i = j;
    }
  }
  return out;
}

/** Parse one TEXT line; null when the line is not an Istio access-log entry. */
export function parseText(line: string): AccessRecord | null {
  if (line.charCodeAt(0) !== LBRACK || line.charCodeAt(line.indexOf("]") + 1) !== SPACE) return null;
  const t = tokenize(line);
  if (!t || t.length < 14 || !t[1].q) return null;
  const startMs = Date.parse(t[0].s);
  if (Number.isNaN(startMs)) return null;
  const req = t[1].s.split(" ");
  if (req.length !== 3) return null;
  // Find the upstream-host quote: the last quoted token.
  let uh = -1;
  for (let k = t.length - 1; k > 1; k--) if (t[k].q) { uh = k; break; }
  if (uh < 6) return null;
  for (let k = uh - 4; k < uh; k++) if (!t[k].q) return null;
  const tail = t.slice(uh + 1);
  if (tail.length < 4 || tail.some((x) => x.q)) return null;
  // Bare numeric fields before XFF: ... BYTES_RECEIVED BYTES_SENT DURATION UPSTREAM_SERVICE_TIME
  const durTok = t[uh - 6];
  if (!durTok || durTok.q) return null;
  const codeTok = t[2];
  const code = codeTok.s === "-" ? 0 : Number(codeTok.s);
  if (!Number.isInteger(code)) return null;
  const isTcp = req[0] === "-";
  return {
    startMs,
    method: isTcp ? "" : req[0],
    protocol: dash(req[2]),
    code,
    flags: t[3] && !t[3].q ? t[3].s : "-",
    durationMs: num(durTok.s),
    authority: dash(t[uh - 1].s),
    upstreamHost: dash(t[uh].s),
    cluster: dash(tail[0].s),
    downstreamLocal: dash(tail[2].s),
    sni: dash(tail[4]?.s),
  };
}

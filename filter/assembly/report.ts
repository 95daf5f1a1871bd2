// Report v2 JSON (ARCHITECTURE.md "Reports"): v1 plus per-edge `bytes` (TCP: stream bytes; HTTP:
// request/response total sizes), `upstream` (upstream-time histogram, HTTP), `methods`
// (idempotent/other counts), and `sni`/`route` on unknown destinations; the collector accepts v1 and v2.
import { Edge, Table } from "./edges";
import { BOUNDS_ID } from "./bounds";

export class Identity {
  workload: string = "";
  namespace: string = "";
  pod: string = "";
  node: string = "";
  mesh: string = "";
}

function q(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34) out += '\\"';
    else if (c == 92) out += "\\\\";
    else if (c < 32) {
      if (c < 16) out += "\\u000";
      else out += "\\u001";
      out += (c & 15).toString(16);
    } else out += String.fromCharCode(c);
  }
  return out + '"';
}

// AS 0.14 mishandles string-valued ternaries (reference counting): plain ifs.
function bytesOf(e: Edge): string {
  if (e.txBytes == 0 && e.rxBytes == 0 && e.proto != "TCP" && e.proto != "TLS") return "";
  return ',"bytes":{"tx":' + e.txBytes.toString() + ',"rx":' + e.rxBytes.toString() + "}";
}
function histogram(b: u64[], sumUs: u64): string {
  const s: string[] = [];
  for (let k = 0; k < b.length; k++) s.push(b[k].toString());
  return '{"bounds":"' + BOUNDS_ID + '","buckets":[' + s.join(",") + '],"sumUs":' + sumUs.toString() + "}";
}
function upstreamOf(e: Edge): string {
  if (e.upCount == 0) return "";
  return ',"upstream":' + histogram(e.upBuckets, e.upSumUs);
}
function methodsOf(e: Edge): string {
  if (e.idempotent == 0 && e.otherMethods == 0) return "";
  return ',"methods":{"idempotent":' + e.idempotent.toString() + ',"other":' + e.otherMethods.toString() + "}";
}
function routeOf(r: string): string {
  if (r == "") return "";
  return ',"route":' + q(r);
}

export function renderReport(id: Identity, t: Table, endMs: u64, droppedEdges: u64, droppedReports: u64): string {
  const parts: string[] = [];
  parts.push(
    '{"v":2,"proxy":{"workload":' +
      q(id.workload) +
      ',"namespace":' +
      q(id.namespace) +
      ',"pod":' +
      q(id.pod) +
      ',"node":' +
      q(id.node) +
      ',"mesh":' +
      q(id.mesh) +
      '},"window":{"startMs":' +
      t.startMs.toString() +
      ',"endMs":' +
      endMs.toString() +
      '},"edges":[',
  );
  for (let i = 0; i < t.keys.length; i++) {
    const e = t.edges.get(t.keys[i]);
    if (i > 0) parts.push(",");
    parts.push(
      '{"dir":"' +
        e.dir +
        '","cluster":' +
        q(e.cluster) +
        ',"authority":' +
        q(e.authority) +
        ',"proto":' +
        q(e.proto) +
        bytesOf(e) +
        ',"count":' +
        e.count.toString() +
        ',"err4xx":' +
        e.err4xx.toString() +
        ',"err5xx":' +
        e.err5xx.toString() +
        ',"flagged":' +
        e.flagged.toString() +
        ',"latency":' +
        histogram(e.buckets, e.sumUs) +
        upstreamOf(e) +
        methodsOf(e) +
        "}",
    );
  }
  parts.push('],"unknown":[');
  for (let i = 0; i < t.unknownKeys.length; i++) {
    const u = t.unknown.get(t.unknownKeys[i]);
    if (i > 0) parts.push(",");
    parts.push(
      '{"cluster":' +
        q(u.cluster) +
        ',"dst":' +
        q(u.dst) +
        ',"authority":' +
        q(u.authority) +
        ',"sni":' +
        q(u.sni) +
        routeOf(u.route) +
        ',"count":' +
        u.count.toString() +
        "}",
    );
  }
  parts.push('],"dropped":{"edges":' + droppedEdges.toString() + ',"reports":' + droppedReports.toString() + "}}");
  return parts.join("");
}

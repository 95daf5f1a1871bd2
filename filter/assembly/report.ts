// Report v2 JSON (ARCHITECTURE.md "Reports"): v1 plus per-edge `sni` and `bytes` (TCP), and
// `sni`/`route` on unknown destinations; the collector accepts v1 and v2.
import { Edge, Table } from "./edges";
import { BOUNDS_ID } from "./bounds";

export class Identity { workload: string = ""; namespace: string = ""; pod: string = ""; node: string = ""; mesh: string = ""; }

function q(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34) out += "\\\""; else if (c == 92) out += "\\\\";
    else if (c < 32) { if (c < 16) out += "\\u000"; else out += "\\u001"; out += (c & 15).toString(16); }
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

// AS 0.14 mishandles string-valued ternaries (reference counting): plain ifs.
function bytesOf(e: Edge): string {
  if (e.proto != "TCP" && e.proto != "TLS") return "";
  return ",\"bytes\":{\"tx\":" + e.txBytes.toString() + ",\"rx\":" + e.rxBytes.toString() + "}";
}
function routeOf(r: string): string {
  if (r == "") return "";
  return ",\"route\":" + q(r);
}

export function renderReport(id: Identity, t: Table, endMs: u64, droppedEdges: u64, droppedReports: u64): string {
  const parts: string[] = [];
  parts.push("{\"v\":2,\"proxy\":{\"workload\":" + q(id.workload) + ",\"namespace\":" + q(id.namespace) + ",\"pod\":" + q(id.pod) +
    ",\"node\":" + q(id.node) + ",\"mesh\":" + q(id.mesh) + "},\"window\":{\"startMs\":" + t.startMs.toString() + ",\"endMs\":" + endMs.toString() + "},\"edges\":[");
  for (let i = 0; i < t.keys.length; i++) {
    const e = t.edges.get(t.keys[i]);
    const b: string[] = [];
    for (let k = 0; k < e.buckets.length; k++) b.push(e.buckets[k].toString());
    if (i > 0) parts.push(",");
    parts.push("{\"dir\":\"" + e.dir + "\",\"cluster\":" + q(e.cluster) + ",\"authority\":" + q(e.authority) + ",\"proto\":" + q(e.proto) +
      bytesOf(e) + ",\"count\":" + e.count.toString() + ",\"err4xx\":" + e.err4xx.toString() + ",\"err5xx\":" + e.err5xx.toString() + ",\"flagged\":" + e.flagged.toString() +
      ",\"latency\":{\"bounds\":\"" + BOUNDS_ID + "\",\"buckets\":[" + b.join(",") + "],\"sumUs\":" + e.sumUs.toString() + "}}");
  }
  parts.push("],\"unknown\":[");
  for (let i = 0; i < t.unknownKeys.length; i++) {
    const u = t.unknown.get(t.unknownKeys[i]);
    if (i > 0) parts.push(",");
    parts.push("{\"cluster\":" + q(u.cluster) + ",\"dst\":" + q(u.dst) + ",\"authority\":" + q(u.authority) + ",\"sni\":" + q(u.sni) +
      routeOf(u.route) + ",\"count\":" + u.count.toString() + "}");
  }
  parts.push("],\"dropped\":{\"edges\":" + droppedEdges.toString() + ",\"reports\":" + droppedReports.toString() + "}}");
  return parts.join("");
}

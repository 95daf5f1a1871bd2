// pluginConfig JSON: a flat object, validated field by field; any error → one clear
// message and the defaults (a bad config must never take traffic down).
export class Config {
  collectorCluster: string = "outbound|8080||meshtune-controller.meshtune-system.svc.cluster.local";
  collectorAuthority: string = "meshtune-controller.meshtune-system.svc.cluster.local:8080";
  flushIntervalMs: u32 = 10000;
  maxEdges: i32 = 1000;
  timeoutMs: u32 = 5000;
  /** Host of the fallback for unlearned destinations: its edges are reported at once (fast path). */
  fallbackHost: string = "meshtune-fallback.meshtune-system.svc.cluster.local";
  /** Earliest report after a new unlearned/blocked/fallback destination appears. */
  fastFlushMs: u32 = 1000;
  /** Per-request timings of both ends (upstream time, sizes, method class): 4 host calls more per request. */
  timings: bool = true;
}

export class ConfigResult {
  config: Config = new Config();
  error: string = "";
}

class Scanner {
  i: i32 = 0;
  constructor(public s: string) {}
  ws(): void {
    while (this.i < this.s.length && this.s.charCodeAt(this.i) <= 32) this.i++;
  }
  peek(): i32 {
    this.ws();
    return this.i < this.s.length ? this.s.charCodeAt(this.i) : -1;
  }
  eat(c: i32): bool {
    if (this.peek() == c) {
      this.i++;
      return true;
    }
    return false;
  }
  str(): string | null {
    if (!this.eat(34)) return null;
    let out = "";
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i++);
      if (c == 34) return out;
      if (c == 92) {
        if (this.i >= this.s.length) return null;
        const e = this.s.charCodeAt(this.i++);
        if (e == 110) out += "\n";
        else if (e == 116) out += "\t";
        else out += String.fromCharCode(e);
      } else out += String.fromCharCode(c);
    }
    return null;
  }
  /** A JSON boolean: 1 true, 0 false, -1 not a boolean. */
  bool(): i32 {
    this.ws();
    if (this.s.substr(this.i, 4) == "true") {
      this.i += 4;
      return 1;
    }
    if (this.s.substr(this.i, 5) == "false") {
      this.i += 5;
      return 0;
    }
    return -1;
  }
  /** A JSON number; NaN when not a number. */
  num(): f64 {
    this.ws();
    const start = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if ((c >= 48 && c <= 57) || c == 45 || c == 43 || c == 46 || c == 101 || c == 69) this.i++;
      else break;
    }
    if (this.i == start) return NaN;
    return parseFloat(this.s.substring(start, this.i));
  }
}

function intField(name: string, v: f64, min: f64, max: f64): string {
  if (isNaN(v) || v != Math.floor(v)) return name + " must be an integer";
  if (v < min || v > max) return name + " must be between " + (<i64>min).toString() + " and " + (<i64>max).toString();
  return "";
}

export function parseConfig(json: string): ConfigResult {
  const r = new ConfigResult();
  if (json.trim().length == 0) return r;
  const c = new Config();
  const sc = new Scanner(json);
  if (!sc.eat(123)) {
    r.error = "pluginConfig is not a JSON object";
    return r;
  }
  if (!sc.eat(125)) {
    do {
      const key = sc.str();
      if (key === null || !sc.eat(58)) {
        r.error = "pluginConfig is not valid JSON near offset " + sc.i.toString();
        return r;
      }
      let err = "";
      if (key == "collectorCluster" || key == "collectorAuthority" || key == "fallbackHost") {
        const v = sc.str();
        if (v === null || v.length == 0 || v.length > 253) err = key + " must be a non-empty string";
        else if (key == "collectorCluster") c.collectorCluster = v;
        else if (key == "collectorAuthority") c.collectorAuthority = v;
        else c.fallbackHost = v;
      } else if (key == "fastFlushMs") {
        const v = sc.num();
        err = intField(key, v, 100, 3600000);
        if (err == "") c.fastFlushMs = <u32>v;
      } else if (key == "flushIntervalMs") {
        const v = sc.num();
        err = intField(key, v, 100, 3600000);
        if (err == "") c.flushIntervalMs = <u32>v;
      } else if (key == "maxEdges") {
        const v = sc.num();
        err = intField(key, v, 1, 100000);
        if (err == "") c.maxEdges = <i32>v;
      } else if (key == "timeoutMs") {
        const v = sc.num();
        err = intField(key, v, 100, 60000);
        if (err == "") c.timeoutMs = <u32>v;
      } else if (key == "timings") {
        const v = sc.bool();
        if (v < 0) err = key + " must be true or false";
        else c.timings = v == 1;
      } else err = 'unknown pluginConfig key "' + key + '"';
      if (err != "") {
        r.error = err;
        return r;
      }
    } while (sc.eat(44));
    if (!sc.eat(125)) {
      r.error = "pluginConfig is not valid JSON near offset " + sc.i.toString();
      return r;
    }
  }
  if (sc.peek() != -1) {
    r.error = "pluginConfig has trailing data at offset " + sc.i.toString();
    return r;
  }
  r.config = c;
  return r;
}

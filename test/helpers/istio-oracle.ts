// Client of the Istio oracle (test/istio-oracle): a Go test binary built from istio.io/istio that
// answers with Istio's own config generator, Envoy simulator, validation and analyzers. One
// long-lived process per environment per test file (start-up, ~1 s, is paid once); requests
// are answered in order, one JSON line each way (answers on fd 3; Go's testing owns stdout).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ROOT } from "./cli.js";

export const ORACLE_BIN = join(ROOT, "build/istio-oracle/oracle.test");

export interface OracleCall {
  address?: string;
  port: number;
  protocol?: "http" | "http2" | "tcp";
  tls?: "plaintext" | "tls" | "mtls";
  alpn?: string;
  host?: string;
  sni?: string;
  path?: string;
  headers?: Record<string, string>;
  mode?: "outbound" | "inbound" | "gateway";
}
export interface OracleProxy {
  name: string;
  namespace: string;
  ip: string;
  labels?: Record<string, string>;
  type?: "sidecar" | "router";
  interception?: "REDIRECT" | "TPROXY";
  calls?: OracleCall[];
  xds?: boolean;
  names?: boolean;
}
export interface OracleRequest {
  kube: string;
  configs: string;
  mesh?: string;
  proxies: OracleProxy[];
  analyze?: boolean;
}
export interface Hit {
  listener?: string;
  filterChain?: string;
  routeConfig?: string;
  virtualHost?: string;
  route?: string;
  cluster?: string;
  error?: string;
}
export interface Sizes {
  count: number;
  bytes: number;
  names?: string[];
}
export type XdsType = "cds" | "lds" | "rds" | "eds" | "ecds";
export interface Chain {
  listener: string;
  listenerFilters: string[];
  name: string;
  networkFilters: string[];
  httpFilters?: string[];
}
export interface ProxyAnswer {
  name: string;
  calls?: Hit[];
  xds?: Record<XdsType, Sizes>;
  generateMs?: number;
  chains?: Chain[];
}
export interface Verdict {
  kind: string;
  name: string;
  namespace: string;
  error?: string;
  warning?: string;
}
export interface AnalyzerMessage {
  code: string;
  level: string;
  resource: string;
  text: string;
}
export interface OracleAnswer {
  id: number;
  error?: string;
  validation: Verdict[];
  proxies: ProxyAnswer[];
  analysis?: AnalyzerMessage[];
  setupMs: number;
}

export class IstioOracle {
  private next = 1;
  private waiting = new Map<number, { ok: (a: OracleAnswer) => void; fail: (e: Error) => void }>();
  private tail = "";
  private exited: Error | null = null;

  private constructor(private readonly child: ChildProcess) {
    const keep = (b: Buffer) => (this.tail = (this.tail + b.toString()).slice(-8192));
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    const answers = createInterface({ input: child.stdio[3] as NodeJS.ReadableStream });
    answers.on("line", (line) => {
      const a = JSON.parse(line) as OracleAnswer;
      const w = this.waiting.get(a.id);
      this.waiting.delete(a.id);
      if (!this.waiting.size) this.hold(false);
      if (!a.error) return w?.ok(a);
      // Istio's harness reports on stdout (a separate pipe): let it arrive, then attach it.
      setTimeout(() => w?.ok({ ...a, error: `${a.error}\n--- oracle output ---\n${this.tail.slice(-3000)}` }), 100);
    });
    // The answer stream closes when the process dies; the child is unref'd, so its exit event
    // may never come before Node would leave: fail every open question here.
    const died = (why: string) => {
      this.exited ??= new Error(`istio oracle ${why}: ${this.tail.slice(-2000)}`);
      for (const w of this.waiting.values()) w.fail(this.exited);
      this.waiting.clear();
    };
    answers.on("close", () => died("closed its answer stream"));
    child.on("exit", (code, sig) => died(`exited (${code ?? sig})`));
  }

  /** The shared oracle for this environment (e.g. { PILOT_FILTER_GATEWAY_CLUSTER_CONFIG: "true" }). */
  static get(env: Record<string, string> = {}): IstioOracle {
    const key = JSON.stringify(env);
    const g = globalThis as unknown as { __istioOracles?: Map<string, IstioOracle> };
    g.__istioOracles ??= new Map();
    let o = g.__istioOracles.get(key);
    if (!o || o.exited) {
      if (!existsSync(ORACLE_BIN)) throw new Error(`${ORACLE_BIN} missing: run make oracle`);
      const child = spawn(ORACLE_BIN, ["-test.run", "^TestServe$", "-test.count", "1", "-test.v"], {
        env: { ...process.env, ...env, ORACLE_SERVE: "1" },
        stdio: ["pipe", "pipe", "pipe", "pipe"],
      });
      child.unref();
      for (const s of [child.stdin, child.stdout, child.stderr, child.stdio[3]])
        (s as unknown as { unref?: () => void })?.unref?.();
      process.once("exit", () => child.kill("SIGKILL"));
      o = new IstioOracle(child);
      g.__istioOracles.set(key, o);
    }
    return o;
  }

  ask(req: OracleRequest): Promise<OracleAnswer> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.next++;
    return new Promise((ok, fail) => {
      this.waiting.set(id, { ok, fail });
      this.hold(true);
      this.child.stdin!.write(JSON.stringify({ id, ...req }) + "\n");
    });
  }

  /** ask, and throw when the oracle could not answer. */
  async answer(req: OracleRequest): Promise<OracleAnswer> {
    const a = await this.ask(req);
    if (a.error) throw new Error(`istio oracle: ${a.error}`);
    return a;
  }

  /** The answer stream keeps Node alive only while a question is open (the process is shared). */
  private hold(on: boolean): void {
    const s = this.child.stdio[3] as unknown as { ref?: () => void; unref?: () => void };
    if (on) s.ref?.();
    else s.unref?.();
  }

  close(): void {
    this.child.kill("SIGKILL");
  }
}

// `meshtune controller` as a process against a kubeconfig (the fake API server), with its
// stderr kept (JSON logs) and a wait for /readyz.
import { spawn, type ChildProcess } from "node:child_process";
import { CLI } from "./cli.js";

export interface ControllerProc {
  p: ChildProcess;
  port: number;
  url(path: string): string;
  stderr(): string;
  ready(): Promise<number>;
}

export function spawnController(kubeconfig: string, extra: string[] = [], nodeArgs: string[] = []): ControllerProc {
  const port = 19600 + Math.floor(Math.random() * 300);
  const p = spawn(
    process.execPath,
    [
      ...nodeArgs,
      CLI,
      "controller",
      "--kubeconfig",
      kubeconfig,
      "--port",
      String(port),
      "--token-port",
      "0",
      "--min-window",
      "1s",
      "--self",
      "meshtune-system/meshtune-controller",
      ...extra,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let err = "";
  p.stderr!.on("data", (d) => (err += d));
  // A test that fails before its cleanup must not leave a controller hammering a shared API server.
  const reap = () => p.kill("SIGKILL");
  process.once("exit", reap);
  p.once("exit", () => process.off("exit", reap));
  const url = (path: string) => `http://127.0.0.1:${port}${path}`;
  return {
    p,
    port,
    url,
    stderr: () => err,
    /** Poll /readyz for up to 10 s; its last status (0: no answer). */
    async ready() {
      let s = 0;
      for (let i = 0; i < 100 && s !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        s = await fetch(url("/readyz")).then(
          (r) => r.status,
          () => 0,
        );
      }
      return s;
    },
  };
}

// Issue 23 item 21, the token port as shipped: the real controller process, whose port 8081 is
// outside the mesh (callers present tokens). One source holding connections open (slowloris)
// fills only its own share; other sources are still served.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { connect, type Socket } from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeApiServer } from "../k8s/fake-apiserver.js";
import { spawnController } from "../helpers/controller-proc.js";
import { freePort } from "../helpers/net.js";

test("item 21: one source's slow connections on the token port take only its own share (32)", async () => {
  const fake = await new FakeApiServer().start();
  const dir = mkdtempSync(join(tmpdir(), "meshtune-tokenport-"));
  writeFileSync(join(dir, "kubeconfig"), fake.kubeconfig());
  const tokenPort = await freePort();
  const c = spawnController(join(dir, "kubeconfig"), ["--token-port", String(tokenPort)]);
  const held: Socket[] = [];
  try {
    assert.is(await c.ready(), 200, c.stderr());
    let closed = 0;
    for (let i = 0; i < 60; i++) {
      const s = connect({ host: "127.0.0.1", port: tokenPort, localAddress: "127.0.0.31" });
      s.on("error", () => {});
      s.on("close", () => closed++);
      s.on("connect", () => s.write("POST /v1/reports HTTP/1.1\r\nhost: x\r\n")); // headers never finish
      held.push(s);
    }
    for (let i = 0; i < 100 && closed < 28; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(closed >= 28, `${closed} of 60 refused from one source`);
    const other = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port: tokenPort, localAddress: "127.0.0.32" }, () =>
        s.write("GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
      );
      let b = "";
      s.on("data", (d) => (b += d));
      s.on("end", () => resolve(b));
      s.on("error", reject);
    });
    assert.match(other, /^HTTP\/1\.1 200/, "another source is served");
  } finally {
    for (const s of held) s.destroy();
    c.p.kill("SIGKILL");
    await fake.stop();
  }
});

test.run();

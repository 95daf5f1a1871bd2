// /healthz, /readyz and /metrics for the helper Deployments and DaemonSets (fallback, agent):
// the kubelet's probes and Prometheus' scrape on one port.
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

/** `notReady()` returns why the process is not ready yet, or null when it is. */
export async function listenAdmin(port: number, registry: Registry, notReady: () => string | null): Promise<Server> {
  const admin = createServer((req, res) => {
    if (req.url === "/healthz") return void res.writeHead(200).end("ok\n");
    if (req.url === "/readyz") {
      const why = notReady();
      return void res.writeHead(why ? 503 : 200).end(why ? `${why}\n` : "ready\n");
    }
    if (req.url === "/metrics")
      return void registry.metrics().then((m) => res.writeHead(200, { "content-type": registry.contentType }).end(m));
    res.writeHead(404).end("not found\n");
  });
  await new Promise<void>((r, j) => {
    admin.once("error", j);
    admin.listen(port, "0.0.0.0", r);
  });
  return admin;
}

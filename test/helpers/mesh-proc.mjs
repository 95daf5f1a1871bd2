// A test double for one pod's processes in the diagnose fault test (run with plain node):
//   app PORT                    HTTP app: x-fault-sleep-ms sleeps, x-fault-busy-ms burns CPU
//   proxy LISTEN UPSTREAM [LOCALADDR]
//                               HTTP forwarding proxy measuring what Envoy's attributes measure:
//                               total = request start → response end (request.duration), upstream =
//                               first byte to the upstream → last byte back (response.backend_latency);
//                               x-fault-proxy-delay-ms delays forwarding (a slow proxy). One JSON
//                               line per request on stdout: {totalUs, upUs, method, reqBytes, respBytes, code}.
//   client URL N [HEADERS_JSON] N sequential keep-alive requests, then "done".
import http from "node:http";

const [role, a, b, c] = process.argv.slice(2);
const spin = (ms) => {
  const end = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  while (process.hrtime.bigint() < end);
};
const us = (t0) => Math.round(Number(process.hrtime.bigint() - t0) / 1000);

if (role === "app") {
  http
    .createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        const busy = Number(req.headers["x-fault-busy-ms"] ?? 0),
          sleep = Number(req.headers["x-fault-sleep-ms"] ?? 0);
        if (busy) spin(busy);
        setTimeout(() => res.end("ok ".repeat(100)), sleep);
      });
    })
    .listen(Number(a), "127.0.0.1", () => console.log("ready"));
} else if (role === "proxy") {
  const [host, port] = b.split(":");
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4, localAddress: c || undefined });
  http
    .createServer((req, res) => {
      const t0 = process.hrtime.bigint();
      const body = [];
      req.on("data", (d) => body.push(d));
      req.on("end", () => {
        const forward = () => {
          let tUp = null,
            respBytes = 0;
          const headers = { ...req.headers };
          delete headers["x-fault-proxy-delay-ms"]; // this proxy's own fault, not the next hop's
          const up = http.request(
            { host, port: Number(port), method: req.method, path: req.url, headers, agent },
            (ur) => {
              const chunks = [];
              ur.on("data", (d) => {
                chunks.push(d);
                respBytes += d.length;
              });
              ur.on("end", () => {
                const upUs = us(tUp);
                res.writeHead(ur.statusCode, ur.headers);
                res.end(Buffer.concat(chunks), () =>
                  console.log(
                    JSON.stringify({
                      totalUs: us(t0),
                      upUs,
                      method: req.method,
                      reqBytes: Buffer.concat(body).length + 200,
                      respBytes: respBytes + 100,
                      code: ur.statusCode,
                    }),
                  ),
                );
              });
            },
          );
          up.on("error", (e) => {
            res.writeHead(503).end();
            console.log(
              JSON.stringify({
                totalUs: us(t0),
                upUs: null,
                method: req.method,
                reqBytes: 0,
                respBytes: 0,
                code: 503,
                error: e.message,
              }),
            );
          });
          tUp = process.hrtime.bigint();
          up.end(Buffer.concat(body));
        };
        const d = Number(req.headers["x-fault-proxy-delay-ms"] ?? 0);
        if (d) setTimeout(forward, d);
        else forward();
      });
    })
    .listen(Number(a), a.includes(":") ? undefined : "0.0.0.0", () => console.log("ready"));
} else if (role === "client") {
  const n = Number(b),
    headers = c ? JSON.parse(c) : {};
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => {
      const r = http.request(a, { agent, headers: { ...headers } }, (res) => {
        res.resume();
        res.on("end", resolve);
      });
      r.on("error", (e) => {
        console.error(e.message);
        resolve();
      });
      r.end();
    });
  }
  console.log("done");
  agent.destroy();
} else {
  console.error(`unknown role ${role}`);
  process.exit(2);
}

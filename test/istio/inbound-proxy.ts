// TEST DOUBLE: the inbound half of an Istio sidecar in front of an app, as far as the app can
// observe it. Each listener stands for mTLS connections from one peer identity (the double does
// no TLS; the identity is what the peer's certificate would carry). Behaviour followed:
//  - forward_client_cert_details APPEND_FORWARD (Istio's default) or SANITIZE_SET (the
//    proxy.istio.io/config proxyHeaders.forwardedClientCert meshtune's pods pin), with Subject,
//    URI and DNS details (istio pilot/pkg/networking/util/proxy_headers.go): with a client
//    certificate, Envoy appends its own element to whatever XFCC the client sent (APPEND_FORWARD)
//    or replaces the header with it (SANITIZE_SET): "By=<local SPIFFE>;Hash=<hex SHA-256 of the
//    peer certificate>;Subject=\"\";URI=<peer SPIFFE>" (envoy source/common/http/
//    conn_manager_utility.cc mutateXfccRequestHeader; Istio workload certificates have an empty
//    subject and no DNS SAN); without one (plaintext under PERMISSIVE), it removes XFCC (mode
//    `plaintext` here);
//  - the connection to the app comes from 127.0.0.6 under REDIRECT (istio core/listener_address.go
//    InboundPassthroughBindIpv4; core/cluster_builder.go upstream_bind_config), or from the
//    peer's own address under TPROXY (core/listener_inbound.go: original_src), here `peerAddress`
//    (a loopback alias standing for the peer pod's IP).
// Not modelled: TLS itself, authorization policies, HTTP/2, retries.
import { createHash } from "node:crypto";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface InboundProxyOptions {
  appPort: number;
  self: string;
  peer: string | null;
  trustDomain?: string;
  forwardedClientCert?: "APPEND_FORWARD" | "SANITIZE_SET";
  interception?: "REDIRECT" | "TPROXY";
  /** TPROXY: the peer pod's address the connection to the app keeps. */
  peerAddress?: string;
}

export class InboundProxy {
  server: Server | null = null;
  url = "";
  constructor(readonly o: InboundProxyOptions) {}

  async start(): Promise<this> {
    const td = this.o.trustDomain ?? "cluster.local";
    const spiffe = (id: string) => {
      const [ns, sa] = id.split("/");
      return `spiffe://${td}/ns/${ns}/sa/${sa}`;
    };
    this.server = createServer((req, res) => {
      const headers = { ...req.headers };
      delete headers["x-forwarded-client-cert"];
      if (this.o.peer) {
        const hash = createHash("sha256").update(`certificate of ${this.o.peer}`).digest("hex");
        const mine = `By=${spiffe(this.o.self)};Hash=${hash};Subject="";URI=${spiffe(this.o.peer)}`;
        const sent = req.headers["x-forwarded-client-cert"];
        const append = (this.o.forwardedClientCert ?? "APPEND_FORWARD") === "APPEND_FORWARD";
        headers["x-forwarded-client-cert"] = append && typeof sent === "string" && sent ? `${sent},${mine}` : mine;
      }
      const up = request(
        {
          host: "127.0.0.1",
          port: this.o.appPort,
          localAddress: this.o.interception === "TPROXY" ? (this.o.peerAddress ?? "127.0.0.1") : "127.0.0.6",
          method: req.method,
          path: req.url,
          headers,
        },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on("error", (e) => {
        if (!res.headersSent) res.writeHead(503).end(`upstream connect error: ${e.message}\n`);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }
}

// Regenerates the bundled sample (deterministic): node samples/bookinfo/generate.mjs
// access.log: `kubectl logs --prefix` output of several sidecars and a gateway, Istio TEXT
// (1.9+ and pre-1.9 shapes) and JSON encodings, HTTP and TCP, egress gateway, passthrough,
// blackhole, istio-agent noise. catalog.json: `kubectl get svc,serviceentries,endpoints -A -o json`.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
let seed = 42;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const pick = (a) => a[Math.floor(rnd() * a.length)];
const uuid = () => "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, () => Math.floor(rnd() * 16).toString(16));
let t = Date.parse("2026-11-20T10:00:00.000Z");
const ts = () => new Date((t += Math.floor(rnd() * 400))).toISOString();
const D = "cluster.local";
const svc = (name, ns) => `${name}.${ns}.svc.${D}`;

const pods = {
  productpage: "productpage-v1-6987489c74-6fgz8", details: "details-v1-79f774bdb9-kx7lq",
  reviews1: "reviews-v1-545db77b95-9qv2w", reviews2: "reviews-v2-7bf8c9648f-2lcgn", reviews3: "reviews-v3-84779c7bbc-m8w9s",
  ratings: "ratings-v1-7dc98c7588-zj5cz", mongodb: "mongodb-v1-6b5f67bb8d-r6tcz",
  frontend: "frontend-v1-5d8f7c9b6d-h2k4p", cart: "cart-v1-66c7d8f9b4-q7xw2", payments: "payments-v1-7c9f8d6b5c-t4mzn",
  redis: "redis-0", gw: "istio-ingressgateway-5c8d7f6b4-x9kqz",
};
const ip = (n) => `10.244.1.${n}`;
const lines = [];
const px = (pod, line) => lines.push(`[pod/${pod}/istio-proxy] ${line}`);

function text(pod, { method = "GET", path = "/", proto = "HTTP/1.1", code = 200, flags = "-", authority, upstream, cluster, dl, dr = `${ip(50)}:${40000 + Math.floor(rnd() * 20000)}`, sni = "-", route = "default", dur, legacy = false, tcp = false }) {
  const d = dur ?? Math.floor(1 + rnd() * 30);
  const req = tcp ? `"- - -"` : `"${method} ${path} ${proto}"`;
  const c = tcp ? 0 : code;
  const ul = upstream === "-" ? "-" : `${ip(50)}:${30000 + Math.floor(rnd() * 30000)}`;
  const ua = tcp ? "-" : pick(["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", "python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1"]);
  const mid = legacy ? `${c} ${flags} "-" "-"` : `${c} ${flags} ${tcp ? "-" : c === 0 ? "-" : "via_upstream"} - "-"`;
  const tail = legacy ? "" : ` ${sni} ${route}`;
  px(pod, `[${ts()}] ${req} ${mid} ${tcp ? 1500 : 0} ${Math.floor(rnd() * 5000)} ${d} ${tcp ? "-" : d - 1} "-" "${ua}" "${tcp ? "-" : uuid()}" "${tcp ? "-" : authority}" "${upstream}" ${cluster} ${ul} ${dl} ${dr}${tail}`);
}

function json(pod, { method = "GET", path = "/", proto = "HTTP/2", code = 200, authority, upstream, cluster, dl, sni = null, dur }) {
  const d = dur ?? Math.floor(1 + rnd() * 20);
  px(pod, JSON.stringify({
    start_time: ts(), method, path, protocol: proto, response_code: rnd() < 0.5 ? code : String(code), response_flags: "-",
    response_code_details: "via_upstream", connection_termination_details: null, upstream_transport_failure_reason: null,
    bytes_received: 0, bytes_sent: Math.floor(rnd() * 3000), duration: rnd() < 0.5 ? d : String(d), "upstream_service_time": String(d - 1),
    x_forwarded_for: null, user_agent: "grpc-go/1.64.0", request_id: uuid(), authority, upstream_host: upstream,
    upstream_cluster: cluster, upstream_local_address: `${ip(60)}:45678`, downstream_local_address: dl, downstream_remote_address: `${ip(61)}:51234`,
    requested_server_name: sni, route_name: "default",
  }));
}

const agent = (pod) => px(pod, `${ts().replace("Z", "000Z")}\tinfo\txdsproxy\tconnected to upstream XDS server: istiod.istio-system.svc:15012`);
const inb = (port, name, ns) => ({ cluster: `inbound|${port}||`, sni: `outbound_.${port}_._.${svc(name, ns)}` });

for (const p of Object.values(pods)) agent(p);
px(pods.productpage, `${ts()}\twarn\tenvoy config\tgRPC config for type.googleapis.com/envoy.config.cluster.v3.Cluster rejected: none`);

for (let i = 0; i < 60; i++) {
  const rv = pick(["reviews1", "reviews2", "reviews3"]);
  const code = rnd() < 0.04 ? 503 : 200;
  // gateway → productpage
  text(pods.gw, { path: "/productpage", authority: "bookinfo.example.com", upstream: `${ip(11)}:9080`, cluster: `outbound|9080||${svc("productpage", "bookinfo")}`, dl: `${ip(2)}:8080`, sni: "-", route: "bookinfo-vs", code, dur: 40 });
  // productpage inbound + outbound (details, reviews)
  text(pods.productpage, { path: "/productpage", authority: "bookinfo.example.com", upstream: `${ip(11)}:9080`, ...inb(9080, "productpage", "bookinfo"), dl: `${ip(11)}:9080`, code, dur: 38 });
  text(pods.productpage, { path: "/details/0", authority: "details:9080", upstream: `${ip(12)}:9080`, cluster: `outbound|9080||${svc("details", "bookinfo")}`, dl: `10.96.12.4:9080`, route: "details.bookinfo.svc.cluster.local:9080", legacy: i % 7 === 0 });
  text(pods.productpage, { path: "/reviews/0", authority: "reviews:9080", upstream: `${ip(13)}:9080`, cluster: `outbound|9080||${svc("reviews", "bookinfo")}`, dl: `10.96.12.5:9080`, route: "reviews.bookinfo.svc.cluster.local:9080", code, dur: 25 });
  text(pods.details, { path: "/details/0", authority: "details:9080", upstream: `${ip(12)}:9080`, ...inb(9080, "details", "bookinfo"), dl: `${ip(12)}:9080` });
  text(pods[rv], { path: "/reviews/0", authority: "reviews:9080", upstream: `${ip(13)}:9080`, ...inb(9080, "reviews", "bookinfo"), dl: `${ip(13)}:9080`, code, dur: 24 });
  if (rv !== "reviews1") {
    text(pods[rv], { path: "/ratings/0", authority: "ratings:9080", upstream: `${ip(14)}:9080`, cluster: `outbound|9080||${svc("ratings", "bookinfo")}`, dl: `10.96.12.6:9080`, route: "ratings.bookinfo.svc.cluster.local:9080", code, dur: 8 });
    text(pods.ratings, { path: "/ratings/0", authority: "ratings:9080", upstream: `${ip(14)}:9080`, ...inb(9080, "ratings", "bookinfo"), dl: `${ip(14)}:9080`, code, dur: 7 });
    if (i % 3 === 0) {
      text(pods.ratings, { tcp: true, authority: "-", upstream: `${ip(15)}:27017`, cluster: `outbound|27017||${svc("mongodb", "bookinfo")}`, dl: `10.96.12.7:27017`, route: "-", dur: 5 });
      text(pods.mongodb, { tcp: true, authority: "-", upstream: `${ip(15)}:27017`, ...inb(27017, "mongodb", "bookinfo"), dl: `${ip(15)}:27017`, route: "-", dur: 5 });
    }
  }
  // shop: JSON-encoded proxies, gRPC
  json(pods.frontend, { method: "POST", path: "/cart.v1.Cart/Get", authority: "cart.shop:7070", upstream: `${ip(21)}:7070`, cluster: `outbound|7070||${svc("cart", "shop")}`, dl: "10.96.20.1:7070" });
  json(pods.cart, { method: "POST", path: "/cart.v1.Cart/Get", authority: "cart.shop:7070", upstream: `${ip(21)}:7070`, cluster: "inbound|7070||", dl: `${ip(21)}:7070`, sni: `outbound_.7070_._.${svc("cart", "shop")}` });
  text(pods.cart, { tcp: true, authority: "-", upstream: `${ip(22)}:6379`, cluster: `outbound|6379||${svc("redis", "shop")}`, dl: "10.96.20.2:6379", route: "-", dur: 1 });
  if (i % 4 === 0) {
    text(pods.gw, { path: "/", authority: "shop.example.com", upstream: `${ip(20)}:8080`, cluster: `outbound|8080||${svc("frontend", "shop")}`, dl: `${ip(2)}:8080`, route: "shop-vs" });
    json(pods.frontend, { method: "GET", proto: "HTTP/1.1", path: "/", authority: "shop.example.com", upstream: `${ip(20)}:8080`, cluster: "inbound|8080||", dl: `${ip(20)}:8080`, sni: `outbound_.8080_._.${svc("frontend", "shop")}` });
    json(pods.frontend, { method: "POST", path: "/payments.v1.Payments/Charge", authority: "payments.shop:7070", upstream: `${ip(23)}:7070`, cluster: `outbound|7070||${svc("payments", "shop")}`, dl: "10.96.20.3:7070" });
    json(pods.payments, { method: "POST", path: "/payments.v1.Payments/Charge", authority: "payments.shop:7070", upstream: `${ip(23)}:7070`, cluster: "inbound|7070||", dl: `${ip(23)}:7070`, sni: `outbound_.7070_._.${svc("payments", "shop")}` });
    // payments → api.stripe.com through the egress gateway (originating TLS there)
    text(pods.payments, { method: "POST", path: "/v1/charges", authority: "api.stripe.com", upstream: `${ip(3)}:80`, cluster: `outbound|80||${svc("istio-egressgateway", "istio-system")}`, dl: "10.96.0.30:80", route: "api.stripe.com:80", dur: 120 });
  }
  if (i % 10 === 0) {
    // details calls Google Books directly: not registered → PassthroughCluster (HTTPS, SNI only)
    text(pods.details, { tcp: true, authority: "-", upstream: "142.250.74.10:443", cluster: "PassthroughCluster", dl: "142.250.74.10:443", sni: "www.googleapis.com", route: "-", dur: 90 });
    // reviews-v3 posts plain HTTP to an unregistered host
    text(pods.reviews3, { method: "POST", path: "/events", authority: "telemetry.example.net", upstream: "203.0.113.7:80", cluster: "PassthroughCluster", dl: "203.0.113.7:80", route: "allow_any", dur: 15 });
    // ratings tries a database outside the registry while REGISTRY_ONLY → BlackHoleCluster
    text(pods.ratings, { tcp: true, authority: "-", upstream: "-", cluster: "BlackHoleCluster", dl: "10.50.0.9:5432", route: "-", flags: "UH", dur: 0 });
  }
}
writeFileSync(join(here, "access.log"), lines.join("\n") + "\n");

// ---- catalog: a mid-size mesh; bookinfo and shop are a small part of it ----
const items = [];
let vip = 1;
function service(name, ns, ports, eps = 2) {
  items.push({ apiVersion: "v1", kind: "Service", metadata: { name, namespace: ns },
    spec: { clusterIP: `10.96.${Math.floor(vip / 250)}.${(vip++ % 250) + 1}`, ports: ports.map(([port, pname, protocol = "TCP"]) => ({ name: pname, port, protocol, targetPort: port })) } });
  items.push({ apiVersion: "v1", kind: "Endpoints", metadata: { name, namespace: ns },
    subsets: [{ addresses: Array.from({ length: eps }, (_, k) => ({ ip: `10.244.${vip % 200}.${k + 10}` })), ports: ports.map(([port, pname]) => ({ name: pname, port })) }] });
}
for (const s of ["productpage", "details", "reviews", "ratings"]) service(s, "bookinfo", [[9080, "http"]], s === "reviews" ? 3 : 1);
service("mongodb", "bookinfo", [[27017, "tcp-mongo"]], 1);
service("frontend", "shop", [[8080, "http"]], 3);
for (const s of ["cart", "payments", "checkout", "catalog", "search", "recommendations", "shipping", "currency", "email", "ads"]) service(s, "shop", [[7070, "grpc"]], 2);
service("redis", "shop", [[6379, "tcp-redis"]], 1);
service("istiod", "istio-system", [[15010, "grpc-xds"], [15012, "https-dns"], [443, "https-webhook"], [15014, "http-monitoring"]], 2);
service("istio-ingressgateway", "istio-system", [[80, "http2"], [443, "https"], [15021, "status-port"]], 2);
service("istio-egressgateway", "istio-system", [[80, "http2"], [443, "https"]], 2);
service("kube-dns", "kube-system", [[53, "dns", "UDP"], [53, "dns-tcp"], [9153, "metrics"]], 2);
service("prometheus", "monitoring", [[9090, "http-web"]], 1);
service("grafana", "monitoring", [[3000, "http"]], 1);
service("alertmanager", "monitoring", [[9093, "http"]], 1);
const teams = ["payments-core", "identity", "search-platform", "ml-serving", "notifications", "billing", "warehouse", "logistics"];
for (const team of teams)
  for (let k = 0; k < 14; k++) service(`${team}-svc-${k}`, team, k % 4 === 3 ? [[5432, "tcp-postgres"]] : [[8080, "http"], [9090, "grpc-admin"]], 1 + (k % 3) * 2);
items.push({ apiVersion: "networking.istio.io/v1beta1", kind: "ServiceEntry", metadata: { name: "stripe", namespace: "shop" },
  spec: { hosts: ["api.stripe.com"], ports: [{ number: 80, name: "http", protocol: "HTTP" }, { number: 443, name: "https", protocol: "TLS" }], location: "MESH_EXTERNAL", resolution: "DNS" } });
items.push({ apiVersion: "networking.istio.io/v1beta1", kind: "ServiceEntry", metadata: { name: "s3", namespace: "warehouse" },
  spec: { hosts: ["s3.eu-west-1.amazonaws.com"], ports: [{ number: 443, name: "tls", protocol: "TLS" }], location: "MESH_EXTERNAL", resolution: "DNS" } });
writeFileSync(join(here, "catalog.json"), JSON.stringify({ apiVersion: "v1", kind: "List", items }, null, 1) + "\n");
console.log(`access.log: ${lines.length} lines; catalog.json: ${items.length} objects`);

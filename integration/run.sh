#!/usr/bin/env bash
# make integration — end to end on kind + Istio + Bookinfo (needs Docker, kind, kubectl, istioctl;
# written for a developer laptop; NOT run here: the CI machines of this repo have no Docker engine).
# The same scenario runs in `make test` through the doubles (test/closed-loop.test.ts).
#  1. kind cluster, Istio (demo profile, access logs on), Bookinfo in an opted-in namespace
#  2. baseline: per-proxy config size (/config_dump bytes, cluster count) and memory
#  3. meshtune installed (kubectl apply -k manifests/), filter module served in-cluster
#  4. traffic driven during learning; every request's status recorded: none may fail
#  5. Sidecars must appear with exactly the expected hosts; config size and memory measured again
# `integration/run.sh api-server`: where no kind cluster can run (this repo's CI), render and apply
# everything to the real test kube-apiserver instead: the kustomize base and the Helm chart, and run
# the image's components as shipped (test/real-apiserver*.test.ts, test/image-run.test.ts,
# test/helm-chart.test.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = api-server ]; then
  make build bpf kube oracle helm build/test/.stamp
  exec node test/run-suite.mjs build/test '(real-apiserver.*|image-run|helm-chart|controller-ha|tune-apply)\.test\.mjs$'
fi
CLUSTER=${CLUSTER:-meshtune-it}
ISTIO_VERSION=${ISTIO_VERSION:-1.27.1}
NS=bookinfo
OUT=${OUT:-build/integration}
mkdir -p "$OUT"
need() { command -v "$1" >/dev/null || { echo "integration: $1 not found (needs: docker kind kubectl istioctl)"; exit 1; }; }
for t in docker kind kubectl istioctl; do need $t; done
docker info >/dev/null 2>&1 || { echo "integration: no Docker engine running"; exit 1; }

cleanup() { [ "${KEEP:-}" = 1 ] || kind delete cluster --name "$CLUSTER" >/dev/null 2>&1; }
trap cleanup EXIT
kind create cluster --name "$CLUSTER" --wait 120s
istioctl install -y --set profile=demo --set meshConfig.accessLogFile=/dev/stdout
kubectl create namespace $NS
kubectl label namespace $NS istio-injection=enabled meshtune.io/enabled=true
# A git ref: the release tag itself (e.g. 1.27.1); "1.27" alone is not a ref (branches are release-1.27).
SAMPLES="https://raw.githubusercontent.com/istio/istio/${ISTIO_VERSION}/samples"
kubectl apply -n $NS -f "$SAMPLES/bookinfo/platform/kube/bookinfo.yaml"
kubectl apply -n $NS -f "$SAMPLES/curl/curl.yaml"
kubectl -n $NS wait --for=condition=available deploy --all --timeout=300s

proxy_stats() { # label → one line per pod: pod config_dump_bytes clusters rss_bytes
  for pod in $(kubectl -n $NS get pod -l 'app in (productpage,reviews,ratings,details)' -o name); do
    bytes=$(kubectl -n $NS exec "$pod" -c istio-proxy -- pilot-agent request GET config_dump | wc -c)
    clusters=$(kubectl -n $NS exec "$pod" -c istio-proxy -- pilot-agent request GET clusters | grep -c '::observability_name::' || true)
    rss=$(kubectl -n $NS exec "$pod" -c istio-proxy -- pilot-agent request GET memory | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated"])')
    echo "$1 ${pod#pod/} $bytes $clusters $rss"
  done
}
# Many unrelated services make the default scope realistic.
for i in $(seq 1 60); do kubectl create namespace team-$((i % 6)) --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n team-$((i % 6)) create service clusterip svc-$i --tcp=8080:8080 >/dev/null; done
sleep 20
proxy_stats before | tee "$OUT/before.txt"

make build bpf
docker build -t meshtune:dev .
kind load docker-image meshtune:dev --name "$CLUSTER"
kubectl apply -k manifests/
# Serve the module from the cluster for the test (production: an OCI registry, see README).
kubectl -n meshtune-system create configmap meshtune-filter --from-file=build/meshtune-filter.wasm
kubectl apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: { name: meshtune-filter, namespace: meshtune-system }
spec:
  selector: { matchLabels: { app: meshtune-filter } }
  template:
    metadata: { labels: { app: meshtune-filter } }
    spec:
      containers:
        - { name: http, image: python:3.12-alpine, command: [python3, -m, http.server, "8000", -d, /srv], volumeMounts: [{ name: wasm, mountPath: /srv }] }
      volumes: [{ name: wasm, configMap: { name: meshtune-filter } }]
---
apiVersion: v1
kind: Service
metadata: { name: meshtune-filter, namespace: meshtune-system }
spec: { selector: { app: meshtune-filter }, ports: [{ name: http, port: 80, targetPort: 8000 }] }
YAML
# The module server must be Ready before the WasmPlugin points at it (Istio fetches once; FAIL_OPEN would skip the filter).
kubectl -n meshtune-system rollout status deploy/meshtune-filter --timeout=180s
kubectl -n istio-system patch wasmplugin meshtune --type merge -p "{\"spec\":{\"url\":\"http://meshtune-filter.meshtune-system.svc/meshtune-filter.wasm\",\"sha256\":\"$(cat build/meshtune-filter.wasm.sha256)\"}}"
# The image under test everywhere; only the learning window shortened (the manifest's other args,
# the token port among them, stay as shipped).
for d in deploy/meshtune-controller deploy/meshtune-fallback ds/meshtune-node; do
  kubectl -n meshtune-system set image "$d" "*=meshtune:dev"
done
args=$(kubectl -n meshtune-system get deploy meshtune-controller -o jsonpath='{.spec.template.spec.containers[0].args}')
kubectl -n meshtune-system patch deploy meshtune-controller --type json -p "[{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/0/args\",\"value\":$(echo "$args" | sed 's/--min-window=[^"]*/--min-window=1m/')}]"
# Two replicas: both must become Ready (each after its own informer sync), not only the leader.
kubectl -n meshtune-system rollout status deploy/meshtune-controller --timeout=180s
[ "$(kubectl -n meshtune-system get deploy meshtune-controller -o jsonpath='{.status.readyReplicas}')" = 2 ] || { echo "integration: both controller replicas must be Ready"; exit 1; }
# The node agent: kind's nodes run the kubelet's systemd driver inside the node container; its
# kubepods cgroup (not verified here: no kind cluster runs on this repo's machines).
KIND_KUBEPODS=${KIND_KUBEPODS:-/sys/fs/cgroup/kubelet.slice/kubelet-kubepods.slice}
kubectl -n meshtune-system set env ds/meshtune-node MESHTUNE_CGROUP="$KIND_KUBEPODS"
kubectl -n meshtune-system rollout status ds/meshtune-node --timeout=180s

# Drive traffic for the learning window and beyond; record every status code.
kubectl -n $NS exec deploy/curl -- sh -c 'for i in $(seq 1 600); do curl -s -o /dev/null -w "%{http_code}\n" http://productpage:9080/productpage; sleep 0.2; done' > "$OUT/statuses.txt"
failed=$(grep -vc '^200$' "$OUT/statuses.txt" || true)
[ "$failed" = 0 ] || { echo "integration: $failed requests failed during learning"; exit 1; }

expect_hosts() { # workload hosts...
  got=$(kubectl -n $NS get sidecar "$1" -o jsonpath='{.spec.egress[0].hosts}' | tr -d '[]"' | tr , '\n' | sort | tr '\n' ' ')
  want=$(printf '%s\n' "${@:2}" | sort | tr '\n' ' ')
  [ "$got" = "$want" ] || { echo "integration: sidecar $1 hosts '$got', want '$want'"; exit 1; }
}
MT="meshtune-system/meshtune-controller.meshtune-system.svc.cluster.local meshtune-system/meshtune-fallback.meshtune-system.svc.cluster.local"
expect_hosts productpage-v1 istio-system/* $MT $NS/details.$NS.svc.cluster.local $NS/reviews.$NS.svc.cluster.local
expect_hosts reviews-v2 istio-system/* $MT $NS/ratings.$NS.svc.cluster.local
expect_hosts reviews-v3 istio-system/* $MT $NS/ratings.$NS.svc.cluster.local
expect_hosts details-v1 istio-system/* $MT
# After the apply the loop must stay closed: traffic still all 200, and reports still reach the collector.
# The image has no wget or curl: node's fetch reads the controller's metrics.
metrics() { kubectl -n meshtune-system exec deploy/meshtune-controller -c controller -- node -e 'fetch("http://127.0.0.1:8080/metrics").then(r=>r.text()).then(t=>process.stdout.write(t))'; }
before=$(metrics | awk '/^meshtune_reports_received_total/{print $2}')
kubectl -n $NS exec deploy/curl -- sh -c 'for i in $(seq 1 150); do curl -s -o /dev/null -w "%{http_code}\n" http://productpage:9080/productpage; sleep 0.2; done' > "$OUT/statuses-after.txt"
failed=$(grep -vc '^200$' "$OUT/statuses-after.txt" || true)
[ "$failed" = 0 ] || { echo "integration: $failed requests failed after Sidecars were applied"; exit 1; }
after=$(metrics | awk '/^meshtune_reports_received_total/{print $2}')
python3 -c "import sys; sys.exit(0 if float('${after:-0}') > float('${before:-0}') else 1)" || { echo "integration: collector stopped receiving reports after the apply"; exit 1; }
sleep 20
proxy_stats after | tee "$OUT/after.txt"
python3 - "$OUT/before.txt" "$OUT/after.txt" <<'PY'
import sys
def load(p): return {l.split()[1]: list(map(int, l.split()[2:])) for l in open(p)}
b, a = load(sys.argv[1]), load(sys.argv[2])
for pod in sorted(b):
    if pod in a:
        (bb, bc, bm), (ab, ac, am) = b[pod], a[pod]
        print(f"{pod:45} config_dump {bb}->{ab} ({100*(bb-ab)/bb:.0f}% less)  clusters {bc}->{ac}  heap {bm>>20}->{am>>20} MiB")
PY
echo "integration: OK"

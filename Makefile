# meshtune — `make run` and `make test` do all setup on a fresh Debian + Node 20 machine.
SHELL := /bin/bash
.DEFAULT_GOAL := build
NODE_BIN := node_modules/.bin
APT_PKGS := clang clang-format llvm libbpf-dev bpftool iptables libelf-dev zlib1g-dev pkg-config iproute2 prometheus chromium time
ESBUILD_NODE := --bundle --platform=node --format=esm --target=node20 --packages=external

.PHONY: deps sysdeps build run test test-unit bench integration clean typecheck lint format kube oracle helm image-tree
node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@
deps: node_modules/.stamp

# Debian packages the BPF build, tests and benches need; installed only when missing.
sysdeps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing) >/tmp/meshtune-apt.log 2>&1 \
	  || { tail -20 /tmp/meshtune-apt.log; echo "apt-get install failed:$$missing"; exit 1; }; fi

build/meshtune.mjs: $(shell find controller -name '*.ts') | node_modules/.stamp
	rm -rf build/chunks # stale chunks of earlier builds would ship in the image (COPY build/chunks)
	$(NODE_BIN)/esbuild controller/main.ts $(ESBUILD_NODE) --splitting --outdir=build --entry-names=meshtune --chunk-names=chunks/[name]-[hash] --out-extension:.js=.mjs --log-level=warning
	chmod +x $@

# The Wasm filter (AssemblyScript 0.14 + proxy-runtime 0.1.8), its sha256 for the WasmPlugin,
# and a no-op filter on the same runtime as the bench baseline.
build/meshtune-filter.wasm: asconfig.json $(wildcard filter/assembly/*.ts) | node_modules/.stamp
	$(NODE_BIN)/asc filter/assembly/index.ts --target release
	sha256sum $@ | cut -d' ' -f1 > $@.sha256
build/noop-filter.wasm: asconfig.json filter/noop/index.ts | node_modules/.stamp
	$(NODE_BIN)/asc filter/noop/index.ts --target noop

# The dashboard bundle (Cytoscape.js + dagre + the views), inlined by the CLI's --html report and
# served by the controller's /ui/.
build/ui/app.js: $(shell find controller/ui -name '*.ts' -o -name '*.css') | node_modules/.stamp
	$(NODE_BIN)/esbuild controller/ui/web/main.ts --bundle --minify --format=iife --platform=browser --target=chrome110,firefox110,safari16 --outdir=build/ui --entry-names=app --log-level=warning

build: build/meshtune.mjs build/ui/app.js build/meshtune-filter.wasm build/noop-filter.wasm

# eBPF datapath: CO-RE object with vmlinux.h generated from this kernel's BTF, skeleton loader,
# and the C test/bench tools. Needs the Debian toolchain (sysdeps).
BPF_OUT := bpf/.output
BPF_CFLAGS := -g -O2 -Wall -target bpf -D__TARGET_ARCH_x86 -I$(BPF_OUT)
$(BPF_OUT)/vmlinux.h: | sysdeps
	@mkdir -p $(BPF_OUT)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@
$(BPF_OUT)/meshtune.bpf.o: bpf/meshtune.bpf.c bpf/ambient.bpf.h bpf/meshtune.h $(BPF_OUT)/vmlinux.h
	clang $(BPF_CFLAGS) -c $< -o $@
$(BPF_OUT)/meshtune.skel.h: $(BPF_OUT)/meshtune.bpf.o
	bpftool gen skeleton $< > $@.tmp && mv $@.tmp $@
build/meshtune-bpf: bpf/loader.c bpf/pods.c bpf/pods.h bpf/ambient.c bpf/common.c bpf/common.h bpf/probe.c bpf/probe.h bpf/tcpstats.h bpf/meshtune.h $(BPF_OUT)/meshtune.skel.h
	@mkdir -p build
	gcc -O2 -Wall -Wno-format-truncation -I$(BPF_OUT) -Ibpf bpf/loader.c bpf/pods.c bpf/ambient.c bpf/common.c bpf/probe.c -o $@ -lbpf -lelf -lz
$(BPF_OUT)/tcpstats.bpf.o: bpf/tcpstats.bpf.c bpf/tcpstats.h bpf/meshtune.h $(BPF_OUT)/vmlinux.h
	clang $(BPF_CFLAGS) -c $< -o $@
$(BPF_OUT)/tcpstats.skel.h: $(BPF_OUT)/tcpstats.bpf.o
	bpftool gen skeleton $< > $@.tmp && mv $@.tmp $@
build/meshtune-tcpstats: bpf/tcpstats.c bpf/tcpstats.h bpf/common.c bpf/common.h bpf/meshtune.h $(BPF_OUT)/tcpstats.skel.h
	@mkdir -p build
	gcc -O2 -Wall -I$(BPF_OUT) -Ibpf bpf/tcpstats.c bpf/common.c -o $@ -lbpf -lelf -lz
build/netfault.bpf.o: bpf/tools/netfault.bpf.c $(BPF_OUT)/vmlinux.h
	@mkdir -p build
	clang $(BPF_CFLAGS) -c $< -o $@
build/foreign.bpf.o: bpf/tools/foreign.bpf.c $(BPF_OUT)/vmlinux.h
	@mkdir -p build
	clang $(BPF_CFLAGS) -c $< -o $@
build/foreign-sockmap.bpf.o: bpf/tools/foreign-sockmap.bpf.c $(BPF_OUT)/vmlinux.h
	@mkdir -p build
	clang $(BPF_CFLAGS) -c $< -o $@
build/mtproxy: bpf/tools/mtproxy.c | sysdeps
	@mkdir -p build
	gcc -O2 -Wall -pthread $< -o $@
build/mtnet: bpf/tools/mtnet.c | sysdeps
	@mkdir -p build
	gcc -O2 -Wall -pthread $< -o $@
build/mtztunnel: bpf/tools/mtztunnel.c | sysdeps
	@mkdir -p build
	gcc -O2 -Wall -pthread $< -o $@
bpf: build/meshtune-bpf build/meshtune-tcpstats build/mtproxy build/mtnet build/mtztunnel build/netfault.bpf.o build/foreign.bpf.o build/foreign-sockmap.bpf.o
.PHONY: bpf

typecheck: deps
	$(NODE_BIN)/tsc -p .

# Formatting and lint: Prettier (TypeScript/JS, width 120), ESLint with typescript-eslint's
# recommended rules, clang-format for the C under bpf/. `make format` rewrites; `lint` only checks.
C_SOURCES = $(shell git ls-files 'bpf/*.c' 'bpf/*.h')
lint: deps sysdeps
	$(NODE_BIN)/prettier --check --log-level=warn .
	$(NODE_BIN)/eslint --max-warnings=0 .
	clang-format --dry-run -Werror $(C_SOURCES)
format: deps sysdeps
	$(NODE_BIN)/prettier --write --log-level=warn .
	$(NODE_BIN)/eslint --fix .
	clang-format -i $(C_SOURCES)

run: build
	node build/meshtune.mjs recommend --access-log samples/bookinfo/access.log --catalog samples/bookinfo/catalog.json --rules --resources --discovery --cryptomb --min-requests 20 --html build/meshtune-report.html
	@echo "meshtune: dashboard written to $(CURDIR)/build/meshtune-report.html (open it in a browser)" >&2

# A real Kubernetes API server for the tests (test infrastructure only, never shipped): kube-apiserver,
# etcd and kubectl from the k8s.io/kubernetes pinned in test/kube/go.mod (go.sum), and the path of
# the pinned istio.io/api module (its CRDs). Built once into Go's own caches: a warm rebuild only
# relinks; cold (a fresh machine) it downloads and compiles for several minutes.
KUBE_BIN := build/kube
# Module mode from go.sum only (no VCS stamping: CI clones may be owned by another user).
GO := GOFLAGS="-mod=readonly -buildvcs=false" go
KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37
$(KUBE_BIN)/.stamp: test/kube/go.mod test/kube/go.sum test/kube/tools.go test/kube/cmd/etcd/main.go
	@command -v go >/dev/null || { echo "make kube: the Go toolchain is needed (go 1.26)"; exit 1; }
	@mkdir -p $(KUBE_BIN)
	cd test/kube && $(GO) build -ldflags "$(KUBE_LDFLAGS)" -o ../../$(KUBE_BIN)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
	cd test/kube && $(GO) build -ldflags "$(KUBE_LDFLAGS)" -o ../../$(KUBE_BIN)/kubectl k8s.io/kubernetes/cmd/kubectl
	cd test/kube && $(GO) build -o ../../$(KUBE_BIN)/etcd ./cmd/etcd
	cd test/kube && $(GO) mod download istio.io/api && $(GO) list -m -f '{{.Dir}}' istio.io/api > ../../$(KUBE_BIN)/istio-api-dir
	touch $@
kube: $(KUBE_BIN)/.stamp

# Istio's own control plane for the tests (test infrastructure only, never shipped): the oracle, a
# Go test binary over istio.io/istio's config generator, Envoy simulator, validation and analyzers
# (test/istio-oracle, istio.io/istio pinned in its go.sum), and istioctl from the same module.
ORACLE_BIN := build/istio-oracle
$(ORACLE_BIN)/.stamp: $(wildcard test/istio-oracle/*.go) test/istio-oracle/go.mod test/istio-oracle/go.sum
	@command -v go >/dev/null || { echo "make oracle: the Go toolchain is needed (go 1.26)"; exit 1; }
	@mkdir -p $(ORACLE_BIN)
	cd test/istio-oracle && $(GO) test -c -o ../../$(ORACLE_BIN)/oracle.test .
	cd test/istio-oracle && $(GO) build -o ../../$(ORACLE_BIN)/istioctl istio.io/istio/istioctl/cmd/istioctl
	touch $@
oracle: $(ORACLE_BIN)/.stamp

# Helm 4 for the chart tests (manifests/helm), built from the Go module proxy (test/helm/go.sum).
build/helm/helm: test/helm/go.mod test/helm/go.sum
	@mkdir -p build/helm
	cd test/helm && $(GO) build -o ../../build/helm/helm helm.sh/helm/v4/cmd/helm
helm: build/helm/helm

build/test/.stamp: $(shell find controller test -name '*.ts') | node_modules/.stamp
	rm -rf build/test
	$(NODE_BIN)/esbuild $$(find test -name '*.test.ts') $(ESBUILD_NODE) --outdir=build/test --out-extension:.js=.mjs --log-level=warning
	touch $@

test-unit: build bpf build/test/.stamp kube oracle helm
	test/run.sh

test: typecheck lint test-unit

bench: build bpf oracle
	CLIENT_CPU=1 SERVER_CPU=1 bench/datapath.sh # one CPU: wakeups stay local, the stack cost shows
	CLIENT_CPU=0 SERVER_CPU=1 bench/datapath.sh # split CPUs: cross-CPU wakeups dominate small RTTs
	CPU=1 bench/tcpstats.sh # kernel TCP probes: attached vs detached, run time per event
	CLIENT_CPU=0 SERVER_CPU=1 bench/ambient.sh # ambient: istio-cni-style iptables vs eBPF into ztunnel; enrolment time
	bench/proxy-priority.sh # the proxy's CPU weight as the kubelet sets it vs meshtune's priority, app saturating the CPU
	SOAK_SECS=600 bench/soak.sh # 10 minutes of connection churn through the eBPF capture: no stall, the bound printed
	$(NODE_BIN)/esbuild bench/filter.ts bench/reconcile.ts bench/collector.ts bench/fallback.ts bench/xds-savings.ts bench/priority-diagnose.ts $(ESBUILD_NODE) --outdir=build/bench --out-extension:.js=.mjs --log-level=warning
	node build/bench/priority-diagnose.mjs # the same priority as diagnose sees it: HTTP through both sidecars, timings through the real filter
	taskset -c 1 node build/bench/filter.mjs
	taskset -c 1 node build/bench/reconcile.mjs # 5 rounds, a fresh controller each
	taskset -c 1 node --max-old-space-size=320 build/bench/collector.mjs # the heap cap the controller manifest sets
	taskset -c 0 node build/bench/fallback.mjs
	node bench/accesslog.mjs
	taskset -c 1 node build/bench/xds-savings.mjs # Istio's own generator: xDS bytes without and with meshtune's Sidecars

# kind + Istio + Bookinfo end to end; needs a Docker engine (a developer laptop), not part of make test.
integration:
	integration/run.sh

image-tree: build bpf
	integration/image-tree.sh

clean:
	rm -rf build

# meshtune image: CLI, controller, fallback and node agent (the agent also runs build/meshtune-bpf
# and build/meshtune-tcpstats; the controller's /ui/ and `recommend --html` read build/ui/).
# Build after `make build bpf`: docker build -t meshtune:dev . (test/image-tree.test.ts assembles
# the same tree from these COPY lines and runs it, since no Docker engine runs in the tests).
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libbpf1 libelf1 zlib1g && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/meshtune
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY build/meshtune.mjs build/meshtune-bpf build/meshtune-tcpstats build/meshtune-filter.wasm build/meshtune-filter.wasm.sha256 ./build/
COPY build/chunks ./build/chunks
COPY build/ui ./build/ui
RUN ln -s /opt/meshtune/build/meshtune.mjs /usr/local/bin/meshtune && ln -s /opt/meshtune/build/meshtune-bpf /usr/local/bin/meshtune-bpf
USER 65532
ENTRYPOINT ["meshtune"]

# meshtune image: CLI, controller and node agent (the agent also needs build/meshtune-bpf).
# Build after `make build bpf`: docker build -t meshtune:dev .
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libbpf1 libelf1 zlib1g && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/meshtune
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY build/meshtune.mjs build/meshtune-bpf build/meshtune-filter.wasm build/meshtune-filter.wasm.sha256 ./build/
COPY build/chunks ./build/chunks
RUN ln -s /opt/meshtune/build/meshtune.mjs /usr/local/bin/meshtune && ln -s /opt/meshtune/build/meshtune-bpf /usr/local/bin/meshtune-bpf
USER 65532
ENTRYPOINT ["meshtune"]

#!/usr/bin/env bash
# make image-tree: what the image holds, without a Docker engine. Assembles the Dockerfile's COPY
# sources under build/image-tree/opt/meshtune (the WORKDIR) and lists them with sizes, plus the
# Wasm module's sha256 that manifests/wasmplugin.yaml and the Helm chart pin. The same tree is
# run as the manifests run it in test/image-run.test.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/image-tree/opt/meshtune
rm -rf build/image-tree && mkdir -p "$out"
grep -E '^COPY ' Dockerfile | while read -r _ rest; do
  read -r -a parts <<<"$rest"
  dst=${parts[-1]}
  for src in "${parts[@]:0:${#parts[@]}-1}"; do
    [ -e "$src" ] || { echo "image-tree: COPY source $src missing (make build bpf)" >&2; exit 1; }
    if [[ $dst == */ ]]; then mkdir -p "$out/$dst" && cp -r "$src" "$out/$dst"; else mkdir -p "$(dirname "$out/$dst")" && cp -r "$src" "$out/$dst"; fi
  done
done
(cd build/image-tree && find . -type f -printf '%10s  %p\n' | sort -k2)
echo "wasm sha256: $(cat build/meshtune-filter.wasm.sha256)"

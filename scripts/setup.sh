#!/usr/bin/env bash
# Idempotent set-up used by `npm test` and `npm run demo`: system packages, npm packages,
# the native addon and the TypeScript build. Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
if [ -z "${LIBTORCH:-}" ] && [ ! -f /usr/include/ATen/ATen.h ]; then need+=(libtorch-dev); fi
# oneDNN headers: the addon's fused inference convolutions (optional; the system libtorch already links libdnnl).
if [ -z "${LIBTORCH:-}" ] && [ ! -f /usr/include/oneapi/dnnl/dnnl.hpp ]; then need+=(libdnnl-dev); fi
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
/usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || need+=(python3-torch)
/usr/bin/python3 -c 'import torchvision' >/dev/null 2>&1 || need+=(python3-torchvision)
# OpenBLAS (its OpenMP build, which libtorch's OpenMP threads share): the BLAS behind libtorch's float64 GEMMs, i.e. the
# PI server's exact ring convolutions, ~3x faster than Debian's reference libblas; it takes libblas.so.3 over.
[ -f /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 ] || need+=(libopenblas0-openmp)
# Redis: the job queue of `deepreduce reduce --queue` / `deepreduce worker` (its tests start a throwaway server).
[ -x /usr/bin/redis-server ] || need+=(redis-server)
# Chromium: the browser client's tests (test/pi/web, playwright-core drives it headless).
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "[setup] missing Debian packages: ${need[*]}" >&2
    echo "[setup] install them with: sudo apt-get install ${need[*]}  (or set LIBTORCH=<dir> for libtorch)" >&2
    case " ${need[*]} " in *" libtorch-dev "*) exit 1;; esac
  fi
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] npm ci"
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
fi

bash scripts/build-native.sh
echo "[setup] tsc"
npx tsc -p tsconfig.json
# The layering of src/ (every import points down, no cycle between folders, nothing Node-only in src/pi's core) and
# the core type-checked with no Node and no DOM typings (src/pi/tsconfig.json; src/pi/host.d.ts lists the host API it
# may use). Prints the facts; fails naming each violation.
node scripts/check-structure.mjs
# The browser client: type-checked with the DOM library, then bundled for the browser (dist/web; fails on any Node import).
npx tsc -p src/web/tsconfig.json
node scripts/build-web.mjs

#!/usr/bin/env bash
# Builds native/build/Release/deepreduce_native.node when missing or older than its sources.
set -euo pipefail
cd "$(dirname "$0")/../native"
out=build/Release/deepreduce_native.node
if [ -f "$out" ] && [ -z "$(find addon.cc binding.gyp -newer "$out")" ]; then exit 0; fi
if [ -z "${LIBTORCH:-}" ] && [ ! -f /usr/include/ATen/ATen.h ]; then
  echo "libtorch not found: install Debian's libtorch-dev (apt-get install libtorch-dev) or set LIBTORCH=<LibTorch dir>" >&2
  exit 1
fi
args=()
[ -f /usr/include/node/node.h ] && args+=(--nodedir=/usr)
echo "[setup] building native addon (libtorch: ${LIBTORCH:-system})"
../node_modules/.bin/node-gyp rebuild "${args[@]}" -j 2 --loglevel=warn

#!/usr/bin/env bash
# The package installs as a package: npm pack, then in an empty folder `npm install ./deepreduce-*.tgz` (from npm's
# local cache where it has everything: --prefer-offline), then the installed `deepreduce` runs `count` and `zoo list`,
# and, when the zoo has a model, `pi serve --model zoo:NAME` starts listening.
# Usage: bash scripts/pack-test.sh [--no-build]
#   --no-build: pack dist/ as it is (npm pack --ignore-scripts; the test suite's way, after setup.sh built it);
#   by default npm pack's prepack builds the addon, tsc and the browser bundle first.
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
[ "${1:-}" = --no-build ] && build=0
[ $build = 1 ] || [ -f dist/src/cli/main.js ] || { echo "pack-test: dist/ is not built (npx tsc -p tsconfig.json)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/deepreduce-pack.XXXXXX")
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
t0=$(date +%s)
flags=(--pack-destination "$tmp" --loglevel=error)
[ $build = 1 ] || flags+=(--ignore-scripts)
tgz=$(npm pack "${flags[@]}" | tail -1)
echo "[pack-test] npm pack: $tgz, $(du -k "$tmp/$tgz" | cut -f1) kB ($(($(date +%s) - t0)) s)"

mkdir "$tmp/app"
cd "$tmp/app"
echo '{ "name": "deepreduce-pack-test", "private": true }' >package.json
t1=$(date +%s)
ONNXRUNTIME_NODE_INSTALL=skip npm install --prefer-offline --no-audit --no-fund --loglevel=error "$tmp/$tgz"
echo "[pack-test] npm install ./$tgz in an empty folder: $(($(date +%s) - t1)) s, node_modules $(du -sm node_modules | cut -f1) MB"
for f in zoo/index.json native/build/Release/deepreduce_native.node dist/web/index.html; do
  [ -e "node_modules/deepreduce/$f" ] || { echo "[pack-test] FAIL: the package lacks $f" >&2; exit 1; }
done
for dev in node-seal onnxruntime-node typescript; do
  if [ -e "node_modules/$dev" ]; then echo "[pack-test] FAIL: dev dependency $dev was installed" >&2; exit 1; fi
done

out=$(npx --no-install deepreduce count --arch resnet18)
echo "$out" | tail -3
echo "$out" | grep -q 'ReLUs' || { echo "[pack-test] FAIL: count printed no ReLU total" >&2; exit 1; }
npx --no-install deepreduce zoo list
first=$(npx --no-install deepreduce zoo list --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const z=JSON.parse(s);process.stdout.write(z.models[0]?.name??"")})')
if [ -n "$first" ]; then
  DEEPREDUCE_THREADS=1 ./node_modules/.bin/deepreduce pi serve --model "zoo:$first" --port 0 --host 127.0.0.1 --insecure 2>"$tmp/serve.log" &
  server=$!
  for _ in $(seq 120); do
    grep -q ' on 127.0.0.1:[0-9]' "$tmp/serve.log" && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.5
  done
  grep ' on 127.0.0.1:[0-9]' "$tmp/serve.log" || { echo "[pack-test] FAIL: pi serve --model zoo:$first did not listen:" >&2; cat "$tmp/serve.log" >&2; exit 1; }
else
  echo "[pack-test] the zoo is empty: pi serve --model zoo:NAME not tried"
fi
echo "[pack-test] ok ($(($(date +%s) - t0)) s)"

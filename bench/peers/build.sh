#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run through step/locked ("$@"), which shellcheck counts as unreachable
# Builds the two peers of bench/peers/run.ts from public sources, outside this repo: SCI (microsoft/EzPC, folder SCI;
# CrypTFlow2's OT ReLU) and OpenCheetah (Alibaba-Gemini-Lab/OpenCheetah; Cheetah's silent-OT ReLU and HE conv), each with
# bench/peers/driver.cpp linked to its library. No submodule or download step runs: every source is a local git repo
# (bare or not) or a plain folder, and each dependency is taken at the commit its peer pins.
# Usage: bench/peers/build.sh [all|sci|cheetah]
# Environment (defaults in brackets):
#   PEERS_DIR      where builds go [~/.cache/deepreduce-peers]; per peer: PEERS_DIR/<peer>/{status,commit,driver}
#   MIRROR         folder holding the repos as owner+name/repo [/work/.mirror]
#   EZPC_SRC, CHEETAH_SRC, SEAL_SRC, EMP_TOOL_SRC, EMP_OT_SRC, HEXL_SRC, ZSTD_SRC, CPU_FEATURES_SRC
#                  one source per repo [MIRROR/<owner>+<name>/repo]; get them with
#                  git clone --bare https://github.com/<owner>/<name> MIRROR/<owner>+<name>/repo
#                  (mpc-msri/EzPC, Alibaba-Gemini-Lab/OpenCheetah, microsoft/SEAL, emp-toolkit/emp-tool,
#                  emp-toolkit/emp-ot, intel/hexl, facebook/zstd, google/cpu_features)
#   JOBS           parallel compile jobs [2]; all steps run under nice -n 19
# A failed step writes "blocked: <step>: <error lines>" to PEERS_DIR/<peer>/status and the script goes on with the
# other peer; a finished peer's status is "ok". Steps already done (a stamp file) are skipped on a rerun.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PEERS_DIR=${PEERS_DIR:-$HOME/.cache/deepreduce-peers}
MIRROR=${MIRROR:-/work/.mirror}
EZPC_SRC=${EZPC_SRC:-$MIRROR/mpc-msri+EzPC/repo}
CHEETAH_SRC=${CHEETAH_SRC:-$MIRROR/Alibaba-Gemini-Lab+OpenCheetah/repo}
SEAL_SRC=${SEAL_SRC:-$MIRROR/microsoft+SEAL/repo}
EMP_TOOL_SRC=${EMP_TOOL_SRC:-$MIRROR/emp-toolkit+emp-tool/repo}
EMP_OT_SRC=${EMP_OT_SRC:-$MIRROR/emp-toolkit+emp-ot/repo}
HEXL_SRC=${HEXL_SRC:-$MIRROR/intel+hexl/repo}
ZSTD_SRC=${ZSTD_SRC:-$MIRROR/facebook+zstd/repo}
CPU_FEATURES_SRC=${CPU_FEATURES_SRC:-$MIRROR/google+cpu_features/repo}
JOBS=${JOBS:-2}
which=${1:-all}
NICE="nice -n 19"

# --- helpers -------------------------------------------------------------------------------------------------------
say() { printf '[peers] %s\n' "$*"; }

# apt packages the builds need; installed only when missing (apt-get update once, first).
need_apt() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

# resolve REV in SRC to a full commit (empty if SRC is a plain folder, not a git repo)
commit_of() { git -C "$1" rev-parse -q --verify "$2^{commit}" 2>/dev/null; }

# export_tree SRC REV DEST [PATHS...]: the tree of REV (git) or a copy of the folder (plain) into DEST.
export_tree() {
  local src=$1 rev=$2 dest=$3
  shift 3
  rm -rf "$dest" && mkdir -p "$dest"
  [ -e "$src" ] || {
    echo "source $src not found"
    return 1
  }
  if commit_of "$src" "$rev" >/dev/null; then
    # A partial clone may lack some large blobs (data files the builds do not read): those files are left out.
    local skip=()
    mapfile -t skip < <(git -C "$src" ls-tree -r "$rev" -- "$@" | awk '$2 == "blob" { print $3 }' |
      git -C "$src" cat-file --batch-check='%(objectname) %(objecttype)' | awk '$2 == "missing" { print $1 }' |
      sort -u | while read -r id; do git -C "$src" ls-tree -r "$rev" -- "$@" | awk -v id="$id" '$3 == id { print $4 }'; done)
    [ ${#skip[@]} -gt 0 ] && printf 'left out (blob not in %s): %s\n' "$src" "${skip[*]}"
    local ex=()
    for f in "${skip[@]}"; do ex+=(":(exclude)$f"); done
    git -C "$src" archive --format=tar "$rev" -- "${@:-.}" "${ex[@]}" | tar -x -C "$dest"
  elif git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    echo "commit $rev is not in $src (fetch it: git -C $src fetch origin $rev)"
    return 1
  else
    cp -a "$src"/. "$dest"/ # a plain folder: taken to be at the pinned commit
  fi
}

# step PEER NAME CMD...: runs CMD once (stamp), logging to PEERS_DIR/PEER/log/NAME.log; on failure records the block.
step() {
  local peer=$1 name=$2
  shift 2
  local d=$PEERS_DIR/$peer
  mkdir -p "$d/log" "$d/stamp"
  [ -e "$d/stamp/$name" ] && return 0
  say "$peer: $name"
  if "$@" >"$d/log/$name.log" 2>&1; then
    touch "$d/stamp/$name"
  else
    local why
    why=$(grep -m5 -iE 'error|not found|fatal|fail' "$d/log/$name.log" | tr '\n' ' ' | cut -c1-600)
    printf 'blocked: %s: %s(log: %s)\n' "$name" "${why:-$(tail -n3 "$d/log/$name.log" | tr '\n' ' ')}" "$d/log/$name.log" >"$d/status"
    say "$peer $(cat "$d/status")"
    return 1
  fi
}

cmake_install() { # SRC BUILD PREFIX [cmake args...]
  local src=$1 build=$2 prefix=$3
  shift 3
  mkdir -p "$build" && cd "$build" &&
    $NICE cmake "$src" -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release "$@" &&
    $NICE make -j"$JOBS" install
}

# the commit a git repo pins a submodule at (its gitlink), else the given fallback
pin() { git -C "$1" rev-parse -q --verify "HEAD:$2" 2>/dev/null || echo "$3"; }

record_commits() { # PEER name=src@rev...
  local peer=$1 f=$PEERS_DIR/$1/commit
  shift
  : >"$f"
  for kv in "$@"; do echo "$kv" >>"$f"; done
}

# --- SCI (EzPC) ----------------------------------------------------------------------------------------------------
build_sci() {
  local d=$PEERS_DIR/sci p=$PEERS_DIR/sci/prefix
  mkdir -p "$d"
  rm -f "$d/status"
  local ezpc seal
  ezpc=$(commit_of "$EZPC_SRC" HEAD || true)
  seal=$(pin "$EZPC_SRC" SCI/extern/SEAL 1d5c8169aa5aca9deb75c4079e53ea8d5e94007d) # SEAL v3.3.2
  record_commits sci "microsoft/EzPC@${ezpc:-plain-folder}" "microsoft/SEAL@$seal"
  step sci apt need_apt cmake g++ make libssl-dev libgmp-dev libeigen3-dev &&
    step sci src-ezpc export_tree "$EZPC_SRC" HEAD "$d/src" SCI/CMakeLists.txt SCI/cmake SCI/src &&
    step sci src-seal export_tree "$SEAL_SRC" "$seal" "$d/seal" &&
    step sci patch-seal patch -p1 -N -d "$d/seal" -i "$d/src/SCI/cmake/seal.patch" &&
    step sci seal cmake_install "$d/seal/native/src" "$d/build/seal" "$p" -DCMAKE_CXX_FLAGS="-include mutex" &&
    step sci driver-target add_driver "$d/src/SCI/CMakeLists.txt" SCI-OT "SCI_OT=1" &&
    step sci sci cmake_sci "$d" "$p" &&
    step sci driver cp "$d/build/sci/bin/peer-driver" "$d/driver" &&
    echo ok >"$d/status" && say "sci: ok ($d/driver)"
}

cmake_sci() { # SCI's own configure would clone SEAL and Eigen: both are handed to it instead; only our driver is built
  local d=$1 p=$2
  mkdir -p "$d/build/sci" && cd "$d/build/sci" &&
    $NICE cmake "$d/src/SCI" -DCMAKE_BUILD_TYPE=Release \
      -DSEAL_DIR="$(dirname "$(find "$p" -name SEALConfig.cmake | head -1)")" \
      -DEigen3_DIR=/usr/share/eigen3/cmake &&
    $NICE make -j"$JOBS" peer-driver
}

# add_driver CMAKELISTS LIBRARY DEFS: appends a target for driver.cpp, linked like the peer's own network binaries.
add_driver() {
  grep -q peer-driver "$1" && return 0
  cat >>"$1" <<EOF

# added by deepreduce bench/peers/build.sh
add_executable(peer-driver "$here/driver.cpp")
target_link_libraries(peer-driver $2)
target_compile_definitions(peer-driver PUBLIC $3)
install(TARGETS peer-driver DESTINATION bin)
EOF
}

# --- OpenCheetah ---------------------------------------------------------------------------------------------------
build_cheetah() {
  local d=$PEERS_DIR/cheetah p=$PEERS_DIR/cheetah/prefix
  mkdir -p "$d"
  rm -f "$d/status"
  local oc et eo seal hexl zstd cpuf=32b49eb5e7809052a28422cfde2f2745fbb0eb76 # cpu_features: HEXL v1.2.2's pin
  oc=$(commit_of "$CHEETAH_SRC" HEAD || true)
  et=$(pin "$CHEETAH_SRC" deps/emp-tool 44b1ddef7bf6bb8eefeede89f27084a96d1d349c)
  eo=$(pin "$CHEETAH_SRC" deps/emp-ot 7f3d4f02d2f44da8c6d355c9ec8159910faf4044)
  seal=$(pin "$CHEETAH_SRC" deps/SEAL 79234726053c45eede688400aa219fdec0810bd8) # v3.7.2
  hexl=$(pin "$CHEETAH_SRC" deps/hexl 343acab47f7612c76cc09bfe39ec9435283fb0e6)  # v1.2.2
  zstd=$(pin "$CHEETAH_SRC" deps/zstd 621d79898811d42529dbabebe7a2d7d5cb0e8dcd)
  record_commits cheetah "Alibaba-Gemini-Lab/OpenCheetah@${oc:-plain-folder}" "emp-toolkit/emp-tool@$et" \
    "emp-toolkit/emp-ot@$eo" "microsoft/SEAL@$seal" "intel/hexl@$hexl" "facebook/zstd@$zstd" \
    "google/cpu_features@$cpuf"
  step cheetah apt need_apt cmake g++ make patch libssl-dev libgmp-dev libeigen3-dev || return 1
  step cheetah src-cheetah export_tree "$CHEETAH_SRC" HEAD "$d/src" CMakeLists.txt include SCI patch networks || return 1
  step cheetah src-emp-tool export_tree "$EMP_TOOL_SRC" "$et" "$d/emp-tool" &&
    step cheetah patch-emp-tool patch -p1 -N -d "$d/emp-tool" -i "$d/src/patch/emp-tool.patch" &&
    step cheetah emp-tool cmake_install "$d/emp-tool" "$d/build/emp-tool" "$p" &&
    step cheetah src-emp-ot export_tree "$EMP_OT_SRC" "$eo" "$d/emp-ot" &&
    step cheetah emp-ot cmake_install "$d/emp-ot" "$d/build/emp-ot" "$p" &&
    step cheetah src-zstd export_tree "$ZSTD_SRC" "$zstd" "$d/zstd" &&
    step cheetah zstd cmake_install "$d/zstd/build/cmake" "$d/build/zstd" "$p" -DZSTD_BUILD_PROGRAMS=OFF \
      -DZSTD_BUILD_SHARED=OFF -DZLIB_BUILD_STATIC=ON -DZSTD_BUILD_TESTS=OFF -DZSTD_MULTITHREAD_SUPPORT=OFF ||
    return 1
  # Intel HEXL (AVX-512 NTTs) as OpenCheetah builds it; its cpu_features dependency is installed first so that HEXL's
  # configure finds it instead of downloading it. Without HEXL, SEAL still builds (slower NTTs): recorded, not fatal.
  local hexl_on=ON
  if ! { step cheetah src-cpu-features export_tree "$CPU_FEATURES_SRC" "$cpuf" "$d/cpu_features" &&
    step cheetah cpu-features cmake_install "$d/cpu_features" "$d/build/cpu_features" "$p" -DBUILD_TESTING=OFF \
      -DBUILD_PIC=ON -DBUILD_SHARED_LIBS=OFF &&
    step cheetah src-hexl export_tree "$HEXL_SRC" "$hexl" "$d/hexl" &&
    step cheetah hexl cmake_install "$d/hexl" "$d/build/hexl" "$p" -DHEXL_BENCHMARK=OFF -DHEXL_COVERAGE=OFF \
      -DHEXL_TESTING=OFF; }; then
    hexl_on=OFF
    echo "hexl: not built, SEAL without HEXL ($(cat "$d/status"))" >>"$d/commit"
    rm -f "$d/status"
  fi
  step cheetah src-seal export_tree "$SEAL_SRC" "$seal" "$d/seal" &&
    step cheetah patch-seal patch -p1 -N -d "$d/seal" -i "$d/src/patch/SEAL.patch" &&
    step cheetah seal cmake_install "$d/seal" "$d/build/seal" "$p" -DSEAL_USE_MSGSL=OFF -DSEAL_USE_ZLIB=OFF \
      -DSEAL_USE_ZSTD=ON -DSEAL_USE_INTEL_HEXL="$hexl_on" -DSEAL_BUILD_DEPS=OFF \
      -DSEAL_THROW_ON_TRANSPARENT_CIPHERTEXT=ON &&
    step cheetah driver-target add_driver "$d/src/CMakeLists.txt" "gemini SCI-Cheetah" "SCI_OT=1 USE_CHEETAH=1" &&
    step cheetah cheetah cmake_cheetah "$d" "$p" &&
    step cheetah driver cp "$d/build/cheetah/bin/peer-driver" "$d/driver" &&
    echo ok >"$d/status" && say "cheetah: ok ($d/driver)"
}

cmake_cheetah() { # as OpenCheetah's scripts/build.sh configures it, but only our driver target is built
  local d=$1 p=$2
  mkdir -p "$d/build/cheetah" && cd "$d/build/cheetah" &&
    $NICE cmake "$d/src" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$p" -DUSE_APPROX_RESHARE=ON &&
    $NICE make -j"$JOBS" peer-driver
}

case "$which" in all | sci | cheetah) ;; *)
  sed -n '3,/^set -uo/p' "$0" | sed 's/^# \{0,1\}//;/^set -uo/d'
  [ "$which" = --help ] || [ "$which" = -h ]
  exit
  ;;
esac
mkdir -p "$PEERS_DIR"

# one build per peer at a time (two runs of this script may overlap: build.sh sci & build.sh cheetah)
locked() { # PEER FUNCTION
  mkdir -p "$PEERS_DIR/$1"
  (
    flock -n 9 || {
      say "$1: another build of it is running (lock $PEERS_DIR/$1/lock)"
      exit 1
    }
    "$2"
  ) 9>"$PEERS_DIR/$1/lock"
}

rc=0
if [ "$which" = all ] || [ "$which" = cheetah ]; then locked cheetah build_cheetah || rc=1; fi
if [ "$which" = all ] || [ "$which" = sci ]; then locked sci build_sci || rc=1; fi
for peer in cheetah sci; do
  [ -e "$PEERS_DIR/$peer/status" ] && say "$peer: $(cat "$PEERS_DIR/$peer/status")"
done
exit $rc

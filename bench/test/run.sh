#!/usr/bin/env bash
# bench/test/run.sh — what the `envship test` sandbox costs on top of the test itself.
#
# Usage: bench/test/run.sh [RUNS (default 20)]
#   ENVSHIP=/path/to/envship   the binary (default: target/release/envship, else target/debug/envship)
#   ENVSHIP_TEST_BULLSEYE_ROOTFS=DIR   also time --rootfs DIR
#
# The archive is a small bench fixture (bin/activate, bin/conda-unpack, 200 small files); the
# test script does nothing, so the times are pure overhead: unpack + activate + conda-unpack +
# sandbox setup. Compared: the same steps in plain bash (no isolation), util-linux `unshare`
# with the same namespaces, and envship test with --isolation none / namespace / --rootfs.
# Prints the median and min wall time per row.
set -euo pipefail
RUNS=${1:-20}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
ENVSHIP=${ENVSHIP:-}
if [ -z "$ENVSHIP" ]; then
  for c in "$REPO/target/release/envship" "$REPO/target/debug/envship"; do
    [ -x "$c" ] && { ENVSHIP=$c; break; }
  done
fi
[ -n "$ENVSHIP" ] || { echo "build envship first (cargo build -p envship)"; exit 1; }

W=$(mktemp -d /tmp/envship-bench-test.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/env/bin" "$W/env/share/data" "$W/proj"
cat >"$W/env/bin/activate" <<'A'
# bench fixture: minimal conda-pack style activate
export CONDA_PREFIX="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$CONDA_PREFIX/bin:$PATH"
A
printf '#!/bin/sh\ntouch "$CONDA_PREFIX/.unpacked"\n' >"$W/env/bin/conda-unpack"
chmod +x "$W/env/bin/conda-unpack"
for i in $(seq 200); do head -c 2048 /dev/urandom >"$W/env/share/data/f$i"; done
tar -C "$W/env" -czf "$W/proj/bench-1.0-linux-64.tar.gz" .
printf 'name: bench\ndependencies: []\n' >"$W/proj/environment.yml"
printf 'true\n' >"$W/proj/run-test.sh"
A="$W/proj/bench-1.0-linux-64.tar.gz"

plain() {
  d=$(mktemp -d "$W/plain.XXXX")
  bash -c "tar -xf '$A' -C '$d' && . '$d/bin/activate' && conda-unpack && cd '$W/proj' && bash run-test.sh"
  rm -rf "$d"
}
unshared() {
  d=$(mktemp -d "$W/plain.XXXX")
  unshare --user --map-root-user --mount --pid --net --fork --mount-proc \
    bash -c "tar -xf '$A' -C '$d' && . '$d/bin/activate' && conda-unpack && cd '$W/proj' && bash run-test.sh"
  rm -rf "$d"
}
envship_test() {
  "$ENVSHIP" -q test "$A" -f "$W/proj/environment.yml" --log "$W/log" "$@" >/dev/null
}

time_it() { # label, command...
  local label=$1; shift
  local times=()
  for _ in $(seq "$RUNS"); do
    local s e
    s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "$label: failed"; "$@"; return 1; }; e=$(date +%s%N)
    times+=($(( (e - s) / 1000 )))
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  med=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")
  min=$(echo "$sorted" | head -1)
  printf '%-44s %9.1f %9.1f\n' "$label" "$(echo "$med/1000" | bc -l)" "$(echo "$min/1000" | bc -l)"
}

echo "envship: $ENVSHIP ($("$ENVSHIP" --version 2>/dev/null || echo "version unknown")), $RUNS runs, $(nproc) cores"
printf '%-44s %9s %9s\n' "setup (test script: true)" "median ms" "min ms"
time_it "plain bash: tar, activate, conda-unpack" plain
time_it "util-linux unshare (user,mnt,pid,net)" unshared
time_it "envship test --isolation none" envship_test --isolation none --dest-prefix "$W/dest"
time_it "envship test (namespace)" envship_test
if [ -n "${ENVSHIP_TEST_BULLSEYE_ROOTFS:-}" ]; then
  time_it "envship test --rootfs bullseye" envship_test --rootfs "$ENVSHIP_TEST_BULLSEYE_ROOTFS"
fi

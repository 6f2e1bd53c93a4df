#!/usr/bin/env bash
# bench/fleet/run.sh — `envship ship --all` of a workspace at -j1 against -j2, and the peer: the
# shell loop of one `envship ship` per (member, target) that a repository runs without --all,
# side by side in one run on the same workspace and warm package cache.
#
# Usage: bench/fleet/run.sh [MEMBERS (default 4)] [RUNS (default 3)]
#   ENVSHIP=PATH   the binary (default: target/release/envship, built if missing)
#   BENCH_WORK=DIR scratch dir (default /tmp/bench-fleet)
#
# The workspace: MEMBERS copies of examples/hello (its offline channel), each shipped for
# lcls-rhel6 and rhel8 (two targets of one platform), so 2×MEMBERS pairs. One untimed run first
# solves the locks and fills the package cache; each timed run then starts from no build
# prefixes and no dist/ (locks kept), so every pair installs, audits, packs and tests.
set -euo pipefail
MEMBERS=${1:-4}
RUNS=${2:-3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/tmp/bench-fleet}
BIN=${ENVSHIP:-$REPO/target/release/envship}
if [ ! -x "$BIN" ]; then (cd "$REPO" && cargo build --release -q -p envship); fi
rm -rf "$WORK"
mkdir -p "$WORK/ws/envs"
WS=$WORK/ws
printf '[workspace]\nmembers = ["envs/*"]\n' >"$WS/envship.toml"
for i in $(seq 1 "$MEMBERS"); do
  m=$WS/envs/hello$i
  mkdir -p "$m"
  cp -r "$REPO/examples/hello/channel" "$REPO/examples/hello/run-test.sh" "$m/"
  sed "s/^name: .*/name: hello$i/" "$REPO/examples/hello/environment.yml" >"$m/environment.yml"
  printf 'targets = ["lcls-rhel6", "rhel8"]\ntest-script = "run-test.sh"\ndest-prefix = "/opt/envship/hello-envship"\n' \
    >"$m/envship.toml"
done
FLAGS=(--offline --version 1.0 --cache-dir "$WORK/cache" --no-reuse)
"$BIN" -q ship --all -j2 "${FLAGS[@]}" "$WS" >/dev/null
reset() { rm -rf "$WS"/envs/*/dist "$WS"/envs/*/.envship; }
now() { date +%s.%N; }
declare -A total
for mode in j1 j2 loop; do total[$mode]=0; done
for run in $(seq 1 "$RUNS"); do
  for mode in j1 j2 loop; do
    reset
    t0=$(now)
    case $mode in
      j1) "$BIN" -q ship --all -j1 "${FLAGS[@]}" "$WS" >/dev/null ;;
      j2) "$BIN" -q ship --all -j2 "${FLAGS[@]}" "$WS" >/dev/null ;;
      loop)
        for i in $(seq 1 "$MEMBERS"); do
          for t in lcls-rhel6 rhel8; do
            "$BIN" -q ship --target "$t" "${FLAGS[@]}" "$WS/envs/hello$i" >/dev/null
          done
        done ;;
    esac
    t=$(echo "$(now) - $t0" | bc)
    total[$mode]=$(echo "${total[$mode]} + $t" | bc)
    printf 'run %d %-5s %6.2f s\n' "$run" "$mode" "$t"
  done
done
j1=$(echo "${total[j1]} / $RUNS" | bc -l); j2=$(echo "${total[j2]} / $RUNS" | bc -l)
loop=$(echo "${total[loop]} / $RUNS" | bc -l)
printf '\n%d pairs (%d members x 2 targets), mean of %d runs, %s\n' $((2 * MEMBERS)) "$MEMBERS" "$RUNS" "$BIN"
printf 'shell loop of envship ship : %6.2f s\n' "$loop"
printf 'ship --all -j1              : %6.2f s\n' "$j1"
printf 'ship --all -j2              : %6.2f s\n' "$j2"
printf -- '-j2 vs -j1: %.2fx   -j2 vs the shell loop: %.2fx\n' "$(echo "$j1 / $j2" | bc -l)" "$(echo "$loop / $j2" | bc -l)"

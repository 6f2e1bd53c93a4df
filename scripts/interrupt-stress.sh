#!/usr/bin/env bash
# Stress envship's interrupt handling with both cores kept busy by CPU hogs:
# - RUNS times in a row (default 200), the interrupt tests that stop a build at a known point
#   (blocked on a FIFO: a first build, an update, and a build that inherited SIGINT ignored);
# - SWEEPS times (default 20), the sweep that sends SIGINT at POINTS moments spread across a
#   first build and an update, POINTS varied per sweep (10-29), so the signal lands at many
#   moments: the lock, the extraction into the package cache, the linking, the rename.
# Stops at the first failure and prints its log; prints runs, interrupts and time at the end.
#   scripts/interrupt-stress.sh [RUNS] [SWEEPS] [HOGS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
sweeps=${2:-20}
hogs=${3:-$(nproc)}
bin=$(cargo test -p envship --test it --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "it" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "cannot find the envship integration-test binary"; exit 2; }

hog_pids=()
for _ in $(seq "$hogs"); do (while :; do :; done) & hog_pids+=($!); done
trap 'kill "${hog_pids[@]}" 2>/dev/null || true' EXIT

log=$(mktemp)
fail() { cat "$log"; echo "FAILED: $1 after $(( $(date +%s) - start )) s"; exit 1; }
start=$(date +%s)
for i in $(seq "$runs"); do
  timeout 300 "$bin" --exact --test-threads=3 \
    interrupt::interrupted_first_build_leaves_nothing_and_the_next_build_completes \
    interrupt::interrupted_update_is_repaired_by_the_next_build \
    interrupt::a_build_that_inherited_an_ignored_sigint_still_stops_on_it \
    >"$log" 2>&1 || fail "run $i of $runs"
done
echo "known-point interrupt tests: $runs runs in a row, 0 failures, $(( $(date +%s) - start )) s"
total=0
for i in $(seq "$sweeps"); do
  points=$(( 10 + (i * 7) % 20 ))
  ENVSHIP_TEST_INTERRUPT_POINTS=$points timeout 900 "$bin" --exact --nocapture \
    interrupt::a_sigint_at_any_moment_of_a_build_is_repaired_by_the_next >"$log" 2>&1 \
    || fail "sweep $i of $sweeps ($points moments)"
  n=$(grep -o '^[0-9]* builds interrupted' "$log" | grep -o '^[0-9]*')
  total=$(( total + n ))
  echo "sweep $i: $n builds interrupted ($points moments per build), each repaired; $(grep -h 'moments across' "$log" | tr '\n' ' ')"
done
echo "interrupt stress: $runs known-point runs and $sweeps sweeps ($total interrupts) passed under $hogs CPU hogs in $(( $(date +%s) - start )) s"

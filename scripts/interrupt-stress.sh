#!/usr/bin/env bash
# Run envship's interrupt tests RUNS times in a row (default 200) with both cores kept busy by a
# CPU hog, and the sweep's signal step varied run to run (20-120 ms), so SIGINT lands at many
# moments of a build: the lock, the extraction into the package cache, the linking, the rename.
# Stops at the first failure and prints its log; prints runs, failures and time at the end.
#   scripts/interrupt-stress.sh [RUNS] [HOG_PROCESSES]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
hogs=${2:-$(nproc)}
cargo test -p envship --test it --no-run --quiet 2>/dev/null
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
start=$(date +%s)
for i in $(seq "$runs"); do
  step=$(( 20 + (i * 37) % 101 ))
  if ! ENVSHIP_TEST_INTERRUPT_STEP_MS=$step timeout 600 "$bin" interrupt:: --test-threads=2 --nocapture \
      >"$log" 2>&1; then
    cat "$log"
    echo "FAILED at run $i of $runs (step ${step} ms) after $(( $(date +%s) - start )) s"
    exit 1
  fi
  grep -ho '[0-9]* builds interrupted at [^,]*' "$log" | sed "s/^/run $i: /" || true
done
echo "interrupt tests: $runs runs, 0 failures, $(( $(date +%s) - start )) s, $hogs CPU hogs"

#!/usr/bin/env bash
# bench/solve/run.sh — `envship lock` vs py-rattler, same repodata, same virtual packages.
#
# Usage: bench/solve/run.sh [RUNS (default 7)]
#   ENVSHIP=/path/to/envship   binary to measure (default target/release/envship, built if missing)
#   PYRATTLER_VENV=DIR         venv with py-rattler (default /work/targets/venv-pyrattler;
#                              created with `pip install py-rattler` if missing)
#   BENCH_WORK=DIR             scratch dir (default /work/targets/bench-solve)
# Prints a table of median wall times and the ratio; exits 1 if the two package sets differ.
set -euo pipefail
RUNS=${1:-7}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/work/targets/bench-solve}
mkdir -p "$WORK"
source "$REPO/bench/pyrattler.sh"
exec "$VENV/bin/python" "$REPO/bench/solve/bench.py" "$ENVSHIP" "$VENV/bin/python" "$WORK" \
    "$REPO/../shared/fixtures" "$RUNS"

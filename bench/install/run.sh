#!/usr/bin/env bash
# bench/install/run.sh — `envship build` vs py-rattler's installer, cold and warm cache.
#
# Usage: bench/install/run.sh [RUNS (default 3)]
#   ENVSHIP=/path/to/envship   binary to measure (default target/release/envship, built if missing)
#   PYRATTLER_VENV=DIR         venv with py-rattler (default /work/targets/venv-pyrattler)
#   BENCH_WORK=DIR             scratch dir (default /work/targets/bench-install)
# The input (20 packages: repackaged python 3.11, pip, 18 packages of real system files) is
# built once by `make-bench-channel` from envship-test-support.
set -euo pipefail
RUNS=${1:-3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/work/targets/bench-install}
mkdir -p "$WORK"
source "$REPO/bench/pyrattler.sh"
if [ ! -f "$WORK/input/environment.yml" ]; then
    (cd "$REPO" && cargo run -q --locked -p envship-test-support --bin make-bench-channel -- "$WORK/input")
fi
exec "$VENV/bin/python" "$REPO/bench/install/bench.py" "$ENVSHIP" "$VENV/bin/python" "$WORK" "$RUNS"

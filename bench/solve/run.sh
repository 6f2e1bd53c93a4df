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
VENV=${PYRATTLER_VENV:-/work/targets/venv-pyrattler}
mkdir -p "$WORK"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import rattler' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q py-rattler
fi
if [ -z "${ENVSHIP:-}" ]; then
    ENVSHIP=${CARGO_TARGET_DIR:-$REPO/target}/release/envship
    [ -x "$ENVSHIP" ] || (cd "$REPO" && cargo build --release --locked -p envship)
fi
echo "envship: $ENVSHIP ($("$ENVSHIP" --version))"
echo "py-rattler: $("$VENV/bin/pip" show py-rattler 2>/dev/null | sed -n 's/^Version: //p')"
exec "$VENV/bin/python" "$REPO/bench/solve/bench.py" "$ENVSHIP" "$VENV/bin/python" "$WORK" \
    "$REPO/../shared/fixtures" "$RUNS"

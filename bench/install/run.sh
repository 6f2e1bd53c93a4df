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
if [ ! -f "$WORK/input/environment.yml" ]; then
    (cd "$REPO" && cargo run -q --locked -p envship-test-support --bin make-bench-channel -- "$WORK/input")
fi
echo "envship: $ENVSHIP ($("$ENVSHIP" --version))"
echo "py-rattler: $("$VENV/bin/pip" show py-rattler 2>/dev/null | sed -n 's/^Version: //p')"
exec "$VENV/bin/python" "$REPO/bench/install/bench.py" "$ENVSHIP" "$VENV/bin/python" "$WORK" "$RUNS"

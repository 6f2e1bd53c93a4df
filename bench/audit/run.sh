#!/usr/bin/env bash
# Throughput of `envship audit` against a readelf-based scan of the same tree.
#
# The tree is a copy of the host's /usr/lib/x86_64-linux-gnu (several hundred MB of real ELF
# files) placed at PREFIX/lib, so DT_NEEDED resolution through the prefix's lib/ works as in a
# conda environment. Both tools read a warm page cache; each is run RUNS times and the median
# wall time is reported. readelf runs on all cores through xargs -P (and on one core, for
# reference); envship uses rayon on all cores.
#
# Usage: bench/audit/run.sh            (builds envship in release mode first)
#        ENVSHIP=/path/to/envship SRC=/some/dir RUNS=5 bench/audit/run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SRC=${SRC:-/usr/lib/x86_64-linux-gnu}
RUNS=${RUNS:-3}
JOBS=$(nproc)

# AUDIT="cmd ..." runs instead of `envship audit` (e.g. the library's example front end:
# AUDIT="target/release/examples/audit_tree"), for when the full CLI cannot be built.
if [[ -z "${AUDIT:-}" ]]; then
  if [[ -z "${ENVSHIP:-}" ]]; then
    (cd "$ROOT" && cargo build --release -p envship --quiet)
    ENVSHIP=${CARGO_TARGET_DIR:-$ROOT/target}/release/envship
  fi
  AUDIT="$ENVSHIP -q audit"
fi
command -v readelf >/dev/null || { echo "readelf not found (apt-get install binutils)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PREFIX=$WORK/prefix
mkdir -p "$PREFIX/lib"
cp -a "$SRC/." "$PREFIX/lib/"

FILES=$(find "$PREFIX" -type f | wc -l)
BYTES=$(find "$PREFIX" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
ELF=$(find "$PREFIX" -type f -print0 | xargs -0 -P "$JOBS" -n 256 file -N --mime-type 2>/dev/null | grep -c 'application/x-\(sharedlib\|executable\|pie-executable\|object\)' || true)
# Warm the page cache so every tool reads from memory.
find "$PREFIX" -type f -print0 | xargs -0 cat > /dev/null

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

time_cmd() {
  local i t0 t1
  for ((i = 0; i < RUNS; i++)); do
    t0=$(now)
    "$@" 2> /dev/null > /dev/null || true
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}'
  done | median
}

envship_full() { $AUDIT "$PREFIX" --target host --json > "$WORK/report.json"; }
envship_headers() { $AUDIT "$PREFIX" --target host --build-prefix '' --json; }
# --inventory adds a loader walk with every ELF file as the main program (what ld.so --list
# FILE would load), so it bounds the cost of the loader model on this tree.
envship_inventory() { $AUDIT "$PREFIX" --target host --build-prefix '' --inventory --json; }
readelf_par() { find "$PREFIX" -type f -print0 | xargs -0 -P "$JOBS" -n 64 readelf -V -d -n --wide; }
readelf_one() { find "$PREFIX" -type f -print0 | xargs -0 -n 64 readelf -V -d -n --wide; }

T_FULL=$(time_cmd envship_full)
T_HEAD=$(time_cmd envship_headers)
T_INV=$(time_cmd envship_inventory)
T_RPAR=$(time_cmd readelf_par)
T_RONE=$(time_cmd readelf_one)

SUMMARY=$(grep -o '"files_scanned": [0-9]*\|"elf_files": [0-9]*\|"errors": [0-9]*\|"warnings": [0-9]*' "$WORK/report.json" | tr '\n' ' ')

echo "tree: $SRC copied to PREFIX/lib: $FILES files ($ELF ELF by file(1)), $((BYTES / 1024 / 1024)) MiB; $JOBS cores; median of $RUNS runs, warm cache"
echo "envship report: $SUMMARY"
printf '%-44s %9s %10s %10s %12s\n' "scanner" "seconds" "MB/s" "files/s" "vs readelf-P"
row() {
  awk -v name="$1" -v t="$2" -v b="$BYTES" -v f="$FILES" -v ref="$T_RPAR" 'BEGIN {
    printf "%-44s %9.3f %10.0f %10.0f %11.1fx\n", name, t, b / 1e6 / t, f / t, ref / t }'
}
row "envship audit (all checks, prefix search)" "$T_FULL"
row "envship audit --build-prefix '' (headers)" "$T_HEAD"
row "  … --inventory (a walk per ELF file)" "$T_INV"
row "readelf -V -d -n, xargs -P $JOBS" "$T_RPAR"
row "readelf -V -d -n, one process at a time" "$T_RONE"

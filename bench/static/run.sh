#!/usr/bin/env bash
# Size and start-up time of the static envship binary (scripts/build-static.sh) against the
# dynamic (glibc) build: `envship --version` (process start only) and `envship targets` (start
# plus detecting this host, which runs `ldd --version`). hyperfine (apt) runs each RUNS times
# after a warm-up; median and minimum wall times are printed.
#
# Usage: STATIC=path/to/static/envship DYNAMIC=path/to/dynamic/envship bench/static/run.sh
#   Defaults: STATIC = target/static/x86_64-unknown-linux-musl/release/envship,
#             DYNAMIC = target/release/envship (cargo build --release -p envship).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATIC=${STATIC:-$ROOT/target/static/x86_64-unknown-linux-musl/release/envship}
DYNAMIC=${DYNAMIC:-$ROOT/target/release/envship}
RUNS=${RUNS:-300}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
for b in "$STATIC" "$DYNAMIC"; do
  [ -x "$b" ] || { echo "no binary at $b" >&2; exit 1; }
done

out=$(mktemp)
trap 'rm -f "$out"' EXIT
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$out" \
  "$STATIC --version" "$DYNAMIC --version" "$STATIC targets" "$DYNAMIC targets" >/dev/null

printf '%-10s %12s  %s\n' kind bytes binary
for b in "$STATIC" "$DYNAMIC"; do
  if readelf -lW "$b" | grep -q INTERP; then kind=dynamic; else kind=static; fi
  printf '%-10s %12s  %s\n' "$kind" "$(stat -c %s "$b")" "$b"
done
echo
python3 - "$out" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    t = sorted(r["times"])
    print("%-90s median %7.2f ms  min %7.2f ms" % (r["command"], t[len(t) // 2] * 1e3, t[0] * 1e3))
PY

#!/usr/bin/env bash
# Run every cargo-fuzz target under fuzz/ for SECONDS each (default 60), one after the other,
# seeded from ../shared/fixtures and the repo's examples. Prints a table of runs and exec counts;
# exits non-zero on the first crash (the reproducer is in fuzz/artifacts/TARGET/).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   scripts/fuzz.sh --build-only     (seed and build, run nothing: CI builds while it tests)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); builds into
# $ENVSHIP_FUZZ_TARGET_DIR (default fuzz/target) so repeated runs reuse the build.
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=false
if [ "${1:-}" = --build-only ]; then build_only=true; shift; fi
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(env_yml relocation_list unpack_tar_gz unpack_tar_zst unpack_zip deflate_walk elf_audit lock_read)
fi
fixtures=${ENVSHIP_FIXTURES:-../shared/fixtures}
export CARGO_TARGET_DIR=${ENVSHIP_FUZZ_TARGET_DIR:-$PWD/fuzz/target}
fuzz=(cargo +nightly fuzz)

# Seed corpora (copied, so the fuzzer's additions never touch the sources).
seed() { # seed TARGET FILE...
  local dir=fuzz/corpus/$1; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp -n "$f" "$dir/" 2>/dev/null || true; done
}
seed env_yml "$fixtures"/envs/*.yml "$fixtures"/locks/*environment*.y*ml examples/*/environment.yml
seed lock_read "$fixtures"/locks/*lock* examples/*/envship.lock
seed relocation_list fuzz/seeds/relocate.txt
seed elf_audit /bin/true /usr/lib/x86_64-linux-gnu/libz.so.1 examples/hello/channel/linux-64/*.conda
# Tar streams and zips for the unpack targets: the hello example's packages, unpacked by tar.
mkdir -p fuzz/corpus/unpack_tar_gz fuzz/corpus/unpack_tar_zst fuzz/corpus/unpack_zip fuzz/corpus/deflate_walk
for t in fuzz/seeds/*.tar; do
  [ -f "$t" ] || continue
  cp -n "$t" fuzz/corpus/unpack_tar_gz/; cp -n "$t" fuzz/corpus/unpack_tar_zst/
  head -c 4096 "$t" > "fuzz/corpus/deflate_walk/$(basename "$t").head"
done
for z in fuzz/seeds/*.zip; do [ -f "$z" ] && cp -n "$z" fuzz/corpus/unpack_zip/; done

"${fuzz[@]}" build --dev "${targets[@]/#/--bin=}" >/dev/null 2>&1 || "${fuzz[@]}" build --dev
if $build_only; then exit 0; fi
printf '%-16s %8s %12s %10s\n' target seconds execs exec/s
for t in "${targets[@]}"; do
  log=$(mktemp)
  if ! "${fuzz[@]}" run --dev "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" \
      -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    # The reproducer's bytes are in the artifact file; keep the log readable.
    grep -v '^\s*\[' "$log" | tail -40 | cut -c1-300
    echo "fuzz target $t crashed: see fuzz/artifacts/$t/" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  printf '%-16s %8s %12s %10s\n' "$t" "$secs" "${execs:-?}" "${rate:-?}"
  rm -f "$log"
done

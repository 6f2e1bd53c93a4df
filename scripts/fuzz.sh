#!/usr/bin/env bash
# The cargo-fuzz targets under fuzz/, built optimized with debug assertions (`-O -a`: overflow
# checks and debug_assert! stay on, as in tests, at release speed).
#   scripts/fuzz.sh [SECONDS] [TARGET...]  fuzz each target for SECONDS (default 60), one after
#                                          the other; prints executions, exec/s and coverage
#   scripts/fuzz.sh --build-only           seed and build, run nothing (CI builds while it tests)
#   scripts/fuzz.sh --replay [TARGET...]   run every input of the committed corpora
#                                          (fuzz/regression/TARGET) once (-runs=0): a regression
#                                          run, no fuzzing
#   scripts/fuzz.sh --cmin [TARGET...]     merge the scratch corpus (fuzz/corpus/TARGET, after a
#                                          run) into fuzz/regression/TARGET, keeping only inputs
#                                          that add coverage and are at most 64 KiB, to
#                                          128 KiB per target
# Exits non-zero on the first crash (the reproducer is in fuzz/artifacts/TARGET/; add it to
# fuzz/regression/TARGET with the fix). Seeds come from ../shared/fixtures, the examples, the
# crates' test data and fuzz/seeds. Needs the nightly toolchain and cargo-fuzz (`cargo install
# cargo-fuzz`); builds into $ENVSHIP_FUZZ_TARGET_DIR (default fuzz/target) so that repeated
# runs reuse the build.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=fuzz
case "${1:-}" in
  --build-only) mode=build; shift ;;
  --replay) mode=replay; shift ;;
  --cmin) mode=cmin; shift ;;
esac
secs=60
if [ "$mode" = fuzz ] && [ $# -gt 0 ]; then secs=$1; shift; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(env_yml relocation_list unpack_tar_gz unpack_tar_zst unpack_zip deflate_walk elf_audit
    lock_read trust_policy minisign sigstore_bundle project_config block_cache_entry block_index)
fi
fixtures=${ENVSHIP_FIXTURES:-../shared/fixtures}
export CARGO_TARGET_DIR=${ENVSHIP_FUZZ_TARGET_DIR:-$PWD/fuzz/target}
# `run` builds with the flags it is given: the same as `build`'s, so it never rebuilds.
fuzz=(cargo +nightly fuzz)
flags=(-O -a)

# Input size caps (libFuzzer's -max_len): the largest seed each target needs, so that mutations
# do not grow inputs (and the work per input) past what the format's edge cases need. The unpack
# and ELF targets write every input to disk: their cost grows with its size.
declare -A max_len=(
  [unpack_tar_gz]=12288 [unpack_tar_zst]=12288 [unpack_zip]=4096 [deflate_walk]=4096
  [elf_audit]=8192 [env_yml]=4096 [lock_read]=4096 [relocation_list]=2048
  [trust_policy]=2048 [minisign]=1024 [sigstore_bundle]=16384 [project_config]=2048
  [block_cache_entry]=2048 [block_index]=4096
)

# Seed corpora (copied, so the fuzzer's additions never touch the sources).
seed() { # seed TARGET FILE...
  local dir=fuzz/corpus/$1; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp -n "$f" "$dir/" 2>/dev/null || true; done
}
seed env_yml "$fixtures"/envs/*.yml "$fixtures"/locks/*environment*.y*ml examples/*/environment.yml
# Small locks (the fixtures' are up to 480 KiB, cut by -max_len), then the fixtures.
seed lock_read fuzz/seeds/locks/*.lock "$fixtures"/locks/*lock* examples/*/envship.lock
seed relocation_list fuzz/seeds/relocate.txt
# Small ELF files only (examples/recipe's, built as its build.sh does): the audit target writes
# each input twice and audits a prefix.
seed elf_audit fuzz/seeds/elf/*
seed trust_policy fuzz/seeds/trust/*.toml
seed sigstore_bundle crates/envship-trust/tests/data/sigstore/*.sigstore.json
seed project_config examples/*/envship.toml fuzz/seeds/config/*.toml
seed block_cache_entry fuzz/seeds/blocks/*.entry
seed block_index fuzz/seeds/blocks/*.index-and-archive
# minisign's first byte says what the rest is: 0 public key, 1 signature, 2 secret key.
mkdir -p fuzz/corpus/minisign
for pair in 0:facility.pub 1:data.txt.minisig 1:legacy.minisig 2:facility.key; do
  { printf %s "${pair%%:*}"; cat "fuzz/seeds/minisign/${pair#*:}"; } \
    >"fuzz/corpus/minisign/${pair#*:}"
done
# Tar streams and zips for the unpack targets: the hello example's packages, unpacked by tar.
mkdir -p fuzz/corpus/unpack_tar_gz fuzz/corpus/unpack_tar_zst fuzz/corpus/unpack_zip fuzz/corpus/deflate_walk
for t in fuzz/seeds/*.tar; do
  [ -f "$t" ] || continue
  cp -n "$t" fuzz/corpus/unpack_tar_gz/; cp -n "$t" fuzz/corpus/unpack_tar_zst/
  head -c 4096 "$t" > "fuzz/corpus/deflate_walk/$(basename "$t").head"
done
for z in fuzz/seeds/*.zip; do [ -f "$z" ] && cp -n "$z" fuzz/corpus/unpack_zip/; done

# One build of every target (cargo-fuzz builds all when given none); its output is shown only
# when it fails.
log=$(mktemp)
if ! "${fuzz[@]}" build "${flags[@]}" >"$log" 2>&1; then
  tail -n 60 "$log"; rm -f "$log"; exit 1
fi
rm -f "$log"
[ "$mode" = build ] && exit 0

# The libFuzzer log's last status line (`#N DONE cov: C ft: F corp: …`) and -print_final_stats.
stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -1; }
cov() { grep -o "$2: [0-9]*" "$1" | tail -1 | cut -d' ' -f2; }
crashed() { # crashed TARGET LOG: show the log's end and fail
  grep -v '^\s*\[' "$2" | tail -40 | cut -c1-300
  echo "fuzz target $1 crashed: the reproducer is in fuzz/artifacts/$1/" >&2
  exit 1
}

case $mode in
fuzz)
  printf '%-18s %8s %12s %10s %7s %7s\n' target seconds execs exec/s cov ft
  for t in "${targets[@]}"; do
    log=$(mktemp)
    mkdir -p "fuzz/regression/$t"
    # New inputs go to the first directory (the scratch corpus), never to the committed one.
    "${fuzz[@]}" run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/regression/$t" -- \
      -max_total_time="$secs" -max_len="${max_len[$t]:-4096}" -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1 || crashed "$t" "$log"
    printf '%-18s %8s %12s %10s %7s %7s\n' "$t" "$secs" "$(stat "$log" number_of_executed_units)" \
      "$(stat "$log" average_exec_per_sec)" "$(cov "$log" cov)" "$(cov "$log" ft)"
    rm -f "$log"
  done
  ;;
replay)
  printf '%-18s %7s %7s %7s\n' target inputs cov ft
  for t in "${targets[@]}"; do
    dir=fuzz/regression/$t
    n=$(find "$dir" -type f 2>/dev/null | wc -l)
    [ "$n" -gt 0 ] || { echo "no committed corpus in $dir" >&2; exit 1; }
    log=$(mktemp)
    # No -max_len: every committed input is run whole. -runs=0: read the corpus, run each
    # input once, stop; a panic, sanitizer report or leak is a failure.
    "${fuzz[@]}" run "${flags[@]}" "$t" "$dir" -- -runs=0 -rss_limit_mb=2048 >"$log" 2>&1 \
      || crashed "$t" "$log"
    printf '%-18s %7s %7s %7s\n' "$t" "$n" "$(cov "$log" cov)" "$(cov "$log" ft)"
    rm -f "$log"
  done
  ;;
cmin)
  for t in "${targets[@]}"; do
    dir=fuzz/regression/$t
    mkdir -p "$dir"
    small=$(mktemp -d)
    find "fuzz/corpus/$t" -type f -size -65537c -exec cp -t "$small" {} +
    log=$(mktemp)
    # -merge=1 adds to $dir only the inputs that give coverage $dir does not have yet.
    "${fuzz[@]}" run "${flags[@]}" "$t" "$dir" "$small" -- -merge=1 \
      -max_len="${max_len[$t]:-4096}" -rss_limit_mb=2048 >"$log" 2>&1 || crashed "$t" "$log"
    # A budget of 128 KiB per target keeps the committed corpora small: past it the largest
    # inputs go (merge keeps a feature's smallest input, so few features go with them). Past
    # crashes and hangs (crash-*, hang-*) always stay.
    find "$dir" -type f ! -name 'crash-*' ! -name 'hang-*' -printf '%s %p\n' | sort -n \
      | awk -v b=$((128 * 1024)) '{ s += $1; if (s > b) print $2 }' | xargs -r rm -f
    echo "$t: $(find "$dir" -type f | wc -l) inputs, $(cat "$dir"/* | wc -c) bytes"
    rm -rf "$small" "$log"
  done
  ;;
esac

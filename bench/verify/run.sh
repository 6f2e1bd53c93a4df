#!/usr/bin/env bash
# bench/verify/run.sh — recording and verifying a tree (envship_pack::tree, what `envship deploy`
# writes and `envship verify` checks) vs `sha256sum` over the same files with one process per
# core, on the same tree in the same run.
#
# Usage: bench/verify/run.sh [SIZE_MB (default 1300)] [RUNS (default 3)]
#   BENCH_TREE=DIR   verify this existing tree (e.g. a real environment) instead of a generated one
#   BENCH_WORK=DIR   scratch dir (default /work/targets/bench-verify)
#
# The generated tree: a binary-heavy environment's shape — a few large files (64-256 MiB), a few
# hundred medium ones (1-4 MiB) and many small ones (4-64 KiB), random bytes, up to SIZE_MB.
# Every run starts with a warm page cache (one untimed pass first): verify re-reads a tree that
# is in use on the host, and a cold cache measures the disk, not envship.
set -euo pipefail

SIZE_MB=${1:-1300}
RUNS=${2:-3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/work/targets/bench-verify}
mkdir -p "$WORK"

# --- a release driver over the library (the full CLI pulls the rattler stack) ----------------
DRV=$WORK/driver
mkdir -p "$DRV/src"
cat >"$DRV/Cargo.toml" <<EOF
[package]
name = "envship-verify-bench"
version = "0.0.0"
edition = "2021"
[dependencies]
envship-pack = { path = "$REPO/crates/envship-pack" }
[profile.release]
lto = "thin"
codegen-units = 4
[workspace]
EOF
cat >"$DRV/src/main.rs" <<'EOF'
// record TREE | verify TREE: what deploy and `envship verify` do.
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let t = std::path::Path::new(&a[2]);
    match a[1].as_str() {
        "record" => {
            let (r, p) = envship_pack::tree::record_tree(t).unwrap();
            eprintln!("recorded {} files, {} bytes in {}", r.files, r.bytes, p.display());
        }
        "verify" => {
            let v = envship_pack::tree::verify(t).unwrap();
            assert!(v.clean, "{:?}", v.drift);
        }
        _ => panic!("record|verify"),
    }
}
EOF
(cd "$DRV" && CARGO_TARGET_DIR=$WORK/driver-target cargo build --release -q)
BIN=$WORK/driver-target/release/envship-verify-bench

# --- the tree ---------------------------------------------------------------------------------
TREE=${BENCH_TREE:-$WORK/tree-$SIZE_MB}
if [ -z "${BENCH_TREE:-}" ] && [ ! -f "$TREE/.done" ]; then
    rm -rf "$TREE"
    mkdir -p "$TREE/lib" "$TREE/share" "$TREE/bin"
    left=$((SIZE_MB * 1024 * 1024))
    i=0
    for mb in 256 128 128 64 64; do
        head -c $((mb << 20)) /dev/urandom >"$TREE/lib/libbig$i.so"
        left=$((left - (mb << 20))); i=$((i + 1))
    done
    d=0
    while [ $left -gt $((8 << 20)) ]; do
        mkdir -p "$TREE/share/pkg$d"
        head -c $(((1 + d % 4) << 20)) /dev/urandom >"$TREE/lib/libmed$d.so"
        left=$((left - ((1 + d % 4) << 20)))
        for s in $(seq 1 40); do
            head -c $(((4 + (s * 7) % 60) << 10)) /dev/urandom >"$TREE/share/pkg$d/f$s.py"
            left=$((left - ((4 + (s * 7) % 60) << 10)))
        done
        d=$((d + 1))
    done
    touch "$TREE/.done"
fi
files=$(find "$TREE" -type f | wc -l)
bytes=$(du -sb "$TREE" | cut -f1)
echo "tree: $TREE ($files files, $((bytes >> 20)) MiB), $(nproc) cores"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # timeit CMD... -> seconds
    local s e
    s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
    echo "$e - $s" | bc
}
sha256sum_all() { find "$TREE" -type f -print0 | xargs -0 -P "$(nproc)" -n 64 sha256sum >/dev/null; }

"$BIN" record "$TREE" 2>&1
sha256sum_all # warm the cache
rec=(); ver=(); sums=()
for _ in $(seq "$RUNS"); do
    rec+=("$(timeit "$BIN" record "$TREE")")
    ver+=("$(timeit "$BIN" verify "$TREE")")
    sums+=("$(timeit sha256sum_all)")
done
r=$(printf '%s\n' "${rec[@]}" | median)
v=$(printf '%s\n' "${ver[@]}" | median)
s=$(printf '%s\n' "${sums[@]}" | median)
printf '%-34s %8s\n' "what (median of $RUNS)" seconds
printf '%-34s %8.2f\n' "record (deploy's last step)" "$r" "envship verify" "$v" "sha256sum, $(nproc) processes" "$s"
printf 'verify: %.0f MiB/s, %.2fx sha256sum\n' "$(echo "($bytes / 1048576) / $v" | bc -l)" "$(echo "$s / $v" | bc -l)"

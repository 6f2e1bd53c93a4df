#!/usr/bin/env bash
# bench/pack/squashfs.sh — envship's squashfs images next to its tar.gz and tar.zst (and
# mksquashfs as the peer tool), then cold `python -c 'import …'` from a squashfuse mount against
# the unpacked tree. Reports numbers; asserts nothing.
#
# Usage: bench/pack/squashfs.sh [RUNS (default 3)]
#   ENVSHIP_PACK=BIN   a release build of the bench driver below (default: built here)
#   BENCH_WORK=DIR     scratch dir on a real disk (default /work/targets/bench-squashfs); the
#                      cold-import rows drop the page cache, which means nothing on a tmpfs
#   BENCH_PREFIX=DIR   the environment to pack (default: the Python test environment, the
#                      machine's python3.11 repackaged + pip + noarch fixtures, site-packages
#                      compiled, built by crates/envship-pack/examples/install_python_env.rs)
#
# Needs root (drop_caches, squashfuse's /dev/fuse), squashfs-tools and squashfuse.
set -euo pipefail

RUNS=${1:-3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/work/targets/bench-squashfs}
NPROC=$(nproc)
mkdir -p "$WORK"
for tool in unsquashfs mksquashfs squashfuse fusermount3; do
    command -v "$tool" >/dev/null || { echo "$tool not found (apt: squashfs-tools squashfuse)" >&2; exit 1; }
done

PREFIX=${BENCH_PREFIX:-$WORK/prefix-python}
if [ ! -d "$PREFIX/conda-meta" ]; then
    rm -rf "$PREFIX" "$PREFIX.pkgs"
    (cd "$REPO" && cargo run -q -p envship-pack --example install_python_env -- "$PREFIX")
fi

# --- a release driver over envship-pack (the full CLI pulls the rattler stack) ---------------
if [ -z "${ENVSHIP_PACK:-}" ]; then
    DRV=$WORK/driver
    mkdir -p "$DRV/src"
    cat >"$DRV/Cargo.toml" <<EOF
[package]
name = "envship-squashfs-bench"
version = "0.0.0"
edition = "2021"
[dependencies]
envship-pack = { path = "$REPO/crates/envship-pack" }
envship-spec = { path = "$REPO/crates/envship-spec" }
[profile.release]
lto = "thin"
codegen-units = 4
[workspace]
EOF
    cat >"$DRV/src/main.rs" <<'EOF'
// envship pack (the CLI's flags this bench uses) and unpack.
use std::path::PathBuf;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let flag = |name: &str| a.iter().position(|x| x == name).map(|i| a[i + 1].clone());
    let p = envship_spec::NoProgress;
    match a[1].as_str() {
        "pack" => {
            let o = envship_pack::PackOptions {
                prefix: flag("--prefix").unwrap().into(),
                output: flag("-o").map(PathBuf::from),
                name: "bench".into(),
                version: "1".into(),
                format: flag("--format").unwrap().parse().unwrap(),
                squashfs_compression: flag("--compress").map_or(Default::default(), |c| c.parse().unwrap()),
                dest_prefix: flag("--dest-prefix"),
                compress_level: flag("--compress-level").map(|l| l.parse().unwrap()),
                jobs: flag("-j").map_or(0, |j| j.parse().unwrap()),
                force: true,
                ..Default::default()
            };
            envship_pack::pack(&o, &p).unwrap();
        }
        "unpack" => {
            let o = envship_pack::UnpackOptions { force: true, ..Default::default() };
            envship_pack::unpack(a[2].as_ref(), a[3].as_ref(), &o, &p).unwrap();
        }
        _ => panic!("pack|unpack"),
    }
}
EOF
    (cd "$DRV" && CARGO_TARGET_DIR=$WORK/driver-target cargo build --release -q)
    ENVSHIP_PACK=$WORK/driver-target/release/envship-squashfs-bench
fi
echo "envship: $ENVSHIP_PACK"
echo "prefix: $(du -sh "$PREFIX" | cut -f1), $(find "$PREFIX" -type f | wc -l) files, $(find "$PREFIX" | wc -l) entries; $RUNS runs, medians; $NPROC cores"

MNT=$WORK/mnt/env      # where the images are mounted, baked in with --dest-prefix
TREE=$WORK/tree/env    # the tar.gz unpacked
mkdir -p "$MNT"

# run NAME CMD...: RUNS times under /usr/bin/time; prints median wall and cpu (user+sys).
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() {
    local name=$1; shift
    local walls=() cpus=()
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f "%e %U %S" -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/err.txt" || {
            echo "$name failed:" >&2; cat "$WORK/err.txt" >&2; exit 1; }
        read -r w u s <"$WORK/time.txt"
        walls+=("$w"); cpus+=("$(echo "$u + $s" | bc)")
    done
    printf '%s %s\n' "$(printf '%s\n' "${walls[@]}" | median)" "$(printf '%s\n' "${cpus[@]}" | median)"
}

echo
echo "| pack (-j$NPROC)          | wall s | cpu s | bytes |"
echo "|---------------------|--------|-------|-------|"
row() {
    local name=$1 out=$2; shift 2
    read -r w c < <(run "$name" "$@")
    printf '| %-19s | %6s | %5s | %s |\n' "$name" "$w" "$c" "$(stat -c %s "$out")"
}
P="$ENVSHIP_PACK pack --prefix $PREFIX -j $NPROC"
row "tar.gz L4" "$WORK/b.tar.gz" $P --format tar.gz -o "$WORK/b.tar.gz"
row "tar.zst L4" "$WORK/b.tar.zst" $P --format tar.zst -o "$WORK/b.tar.zst"
row "tar.zst L9" "$WORK/b9.tar.zst" $P --format tar.zst --compress-level 9 -o "$WORK/b9.tar.zst"
row "squashfs gzip L4" "$WORK/gz.squashfs" $P --format squashfs --compress gzip --dest-prefix "$MNT" -o "$WORK/gz.squashfs"
row "squashfs gzip L9" "$WORK/gz9.squashfs" $P --format squashfs --compress gzip --compress-level 9 --dest-prefix "$MNT" -o "$WORK/gz9.squashfs"
row "squashfs zstd L4" "$WORK/zst.squashfs" $P --format squashfs --compress zstd --dest-prefix "$MNT" -o "$WORK/zst.squashfs"
row "squashfs zstd L15" "$WORK/zst15.squashfs" $P --format squashfs --compress zstd --compress-level 15 --dest-prefix "$MNT" -o "$WORK/zst15.squashfs"
row "sh (tar.gz L4)" "$WORK/b.sh" $P --format sh -o "$WORK/b.sh"
# The peer: mksquashfs of the same files (the tar.gz unpacked), its defaults but all-root.
rm -rf "$TREE" && mkdir -p "$TREE" && tar -xzf "$WORK/b.tar.gz" -C "$TREE"
row "mksquashfs gzip L9" "$WORK/mk-gz.squashfs" mksquashfs "$TREE" "$WORK/mk-gz.squashfs" -noappend -all-root -comp gzip -processors "$NPROC" -quiet
row "mksquashfs zstd L15" "$WORK/mk-zst.squashfs" mksquashfs "$TREE" "$WORK/mk-zst.squashfs" -noappend -all-root -comp zstd -processors "$NPROC" -quiet

# --- cold imports -------------------------------------------------------------------------------
IMPORTS='import json, email.parser, http.client, xml.dom.minidom, asyncio, decimal, argparse, pip._internal.cli.main'
rm -rf "$TREE" && "$ENVSHIP_PACK" unpack "$WORK/b.tar.gz" "$TREE"
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
import_time() { /usr/bin/time -f "%e" -o "$WORK/time.txt" "$1/bin/python" -c "$IMPORTS"; cat "$WORK/time.txt"; }
echo
echo "python -c '$IMPORTS'"
echo
echo "| from                     | cold s (median) | warm s (median) |"
echo "|--------------------------|-----------------|-----------------|"
measure() {
    local name=$1 root=$2 image=${3:-}
    local colds=() warms=()
    for _ in $(seq "$RUNS"); do
        [ -z "$image" ] || squashfuse "$image" "$root"
        cold
        colds+=("$(import_time "$root")")
        warms+=("$(import_time "$root")")
        [ -z "$image" ] || fusermount3 -u "$root"
    done
    printf '| %-24s | %15s | %15s |\n' "$name" \
        "$(printf '%s\n' "${colds[@]}" | median)" "$(printf '%s\n' "${warms[@]}" | median)"
}
measure "unpacked tree" "$TREE"
measure "squashfuse, gzip L4" "$MNT" "$WORK/gz.squashfs"
measure "squashfuse, zstd L4" "$MNT" "$WORK/zst.squashfs"
measure "squashfuse, zstd L15" "$MNT" "$WORK/zst15.squashfs"
rm -rf "$TREE"

#!/usr/bin/env bash
# Build envship as one fully static x86_64 binary (musl; no PT_INTERP, no DT_NEEDED) that starts
# on every RHEL from 6 (glibc 2.12, Linux 2.6.32) on. The binary's path is the last line printed.
#
#   scripts/build-static.sh [--profile release|static-ci] [--tar DIR]
#
# Route (see ../shared/TOOLCHAIN.md): Debian's rustc-web/cargo-web with rust-web-src rebuild std
# for x86_64-unknown-linux-musl (`-Zbuild-std`, unlocked with RUSTC_BOOTSTRAP because rustup
# cannot fetch a musl std here), and zig (ziglang + cargo-zigbuild from PyPI, in a venv) links it
# and compiles the C dependencies (zstd, libdeflate, bzip2, aws-lc) against its bundled musl.
# zig also supplies musl's crt objects and libunwind, hence `-C link-self-contained=no`.
#
# Installs what it needs (apt, pip into $ENVSHIP_TOOLS) and keeps its target directory
# ($ENVSHIP_STATIC_TARGET_DIR, default target/static) between runs, so a rebuild after a change
# recompiles only what changed.
#
# --profile static-ci: the lighter profile CI uses (opt-level 1, no LTO, more codegen units): the
#   same code and system calls as the release binary, built faster, larger and slower.
# --tar DIR: also write DIR/envship-x86_64-unknown-linux-musl.tar.gz and its .sha256 (the
#   release assets action.yml downloads).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ENVSHIP_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/envship-tools}"
TARGET_DIR="${ENVSHIP_STATIC_TARGET_DIR:-$repo/target/static}"
TRIPLE=x86_64-unknown-linux-musl
# zig 0.14 and cargo-zigbuild 0.20 are the oldest versions this was checked with.
ZIG_REQ="ziglang>=0.14"
ZIGBUILD_REQ="cargo-zigbuild>=0.20"

profile=release
tar_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --tar) tar_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "build-static.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { echo "build-static: $*" >&2; }

# Debian's Rust (rustc 1.96 with std sources); rustup's toolchains have no musl std here.
if [ ! -x /usr/bin/rustc ] || [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
  log "installing rustc-web, cargo-web, rust-web-src (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends rustc-web cargo-web rust-web-src python3-venv >&2
fi

venv="$TOOLS/venv-zig"
if [ ! -x "$venv/bin/cargo-zigbuild" ] || [ ! -x "$venv/bin/python-zig" ]; then
  log "installing ziglang and cargo-zigbuild into $venv (pip)"
  mkdir -p "$TOOLS"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$ZIG_REQ" "$ZIGBUILD_REQ" >&2
fi

log "building envship ($profile) for $TRIPLE in $TARGET_DIR"
cd "$repo"
# Debian's cargo and rustc, not rustup's proxies earlier on PATH.
env PATH="$venv/bin:/usr/bin:/bin" \
  RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo RUSTC_BOOTSTRAP=1 \
  RUSTFLAGS="-C link-self-contained=no" \
  CARGO_TARGET_DIR="$TARGET_DIR" \
  /usr/bin/cargo zigbuild --locked -p envship --profile "$profile" \
    -Zbuild-std=std,panic_abort --target "$TRIPLE" >&2

bin="$TARGET_DIR/$TRIPLE/$profile/envship"
# Static means: no program interpreter and no needed libraries.
if readelf -lW "$bin" | grep -q 'INTERP' || readelf -dW "$bin" | grep -q '(NEEDED)'; then
  log "$bin is not static:"
  readelf -lW "$bin" | grep -A1 INTERP >&2 || true
  readelf -dW "$bin" | grep NEEDED >&2 || true
  exit 1
fi
log "$("$bin" --version): $(stat -c %s "$bin") bytes, static"

if [ -n "$tar_dir" ]; then
  mkdir -p "$tar_dir"
  asset="envship-$TRIPLE.tar.gz"
  # Reproducible: fixed owner, mode and mtime, so the same binary gives the same asset.
  tar --owner=0 --group=0 --numeric-owner --mode=0755 --mtime=@0 \
    -C "$(dirname "$bin")" -cf - envship | gzip -n -9 > "$tar_dir/$asset.tmp"
  mv "$tar_dir/$asset.tmp" "$tar_dir/$asset"
  (cd "$tar_dir" && sha256sum "$asset" > "$asset.sha256")
  log "wrote $tar_dir/$asset and $asset.sha256"
fi

echo "$bin"

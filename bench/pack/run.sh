#!/usr/bin/env bash
# bench/pack/run.sh — conda-pack 0.9.2 vs envship pack/unpack, same prefix, same machine, same run.
#
# Usage: bench/pack/run.sh [SIZE_MB (default 1100)] [RUNS (default 3)]
#   ENVSHIP=/path/to/envship   use this envship binary (default: target/release/envship if it
#                              exists, else a release build of a tiny driver over envship-pack)
#   BENCH_WORK=DIR             scratch dir (default /work/targets/bench-pack)
#   CONDAPACK_VENV=DIR         venv for conda-pack (default /work/targets/venv-condapack)
#   INSTALL_FIXTURES=BIN       prebuilt `install_fixtures` example (else `cargo run --example`)
#   BENCH_PREFIX=DIR           bench this existing environment instead of building one (conda-pack
#                              needs its package cache, from conda-meta's link.source, to exist);
#                              BENCH_PREFIX=python: a real Python environment (the machine's
#                              python3.11 repackaged + pip + noarch fixtures, site-packages
#                              compiled), built by examples/install_python_env.rs
#   GZ_LEVEL / ZST_LEVEL       compression levels (default 4 / 9, see below)
#
# The prefix: fixture packages installed by rattler (examples/install_fixtures.rs), plus copies
# of real system files (/usr/lib/x86_64-linux-gnu, a python stdlib, …) up to SIZE_MB, registered
# in conda-meta/bench-data-1.0-0.json so both tools treat them as conda-managed.
# Prints median wall time, CPU (user+sys), peak RSS and size per tool and setting, and ratios.
set -euo pipefail

SIZE_MB=${1:-1100}
RUNS=${2:-3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/work/targets/bench-pack}
VENV=${CONDAPACK_VENV:-/work/targets/venv-condapack}
if [ "${BENCH_PREFIX:-}" = python ]; then
    BENCH_PREFIX=$WORK/prefix-python
    if [ ! -x "$BENCH_PREFIX/bin/python" ]; then
        rm -rf "$BENCH_PREFIX" "$BENCH_PREFIX.pkgs"
        (cd "$REPO" && cargo run -q -p envship-pack --example install_python_env -- "$BENCH_PREFIX")
    fi
fi
PREFIX=${BENCH_PREFIX:-$WORK/prefix-$SIZE_MB}
NPROC=$(nproc)
GZ_LEVEL=${GZ_LEVEL:-4}
# conda-pack 0.9.2 builds its zstd writer as ParallelZstdFileWriter(fileobj): --compress-level
# and -j never reach it, so its tar.zst is always zstd level 9 on one thread. Equal settings
# for tar.zst therefore means envship at level 9 (conda-pack gets the same flag; it ignores it).
ZST_LEVEL=${ZST_LEVEL:-9}
mkdir -p "$WORK"

# --- conda-pack -------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/conda-pack" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "conda-pack==0.9.2" zstandard
fi

# --- envship ----------------------------------------------------------------------------------
if [ -z "${ENVSHIP:-}" ]; then
    if [ -x "$REPO/target/release/envship" ]; then
        ENVSHIP=$REPO/target/release/envship
    else
        # A release driver over the library only (the full CLI pulls the rattler stack).
        DRV=$WORK/driver
        mkdir -p "$DRV/src"
        cat >"$DRV/Cargo.toml" <<EOF
[package]
name = "envship-pack-bench"
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
// envship pack/unpack with the CLI's flags that the bench uses.
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
                compress_level: flag("--compress-level").map(|l| l.parse().unwrap()),
                jobs: flag("-j").map_or(0, |j| j.parse().unwrap()),
                exclude: flag("--exclude").into_iter().collect(),
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
        ENVSHIP=$WORK/driver-target/release/envship-pack-bench
    fi
fi
echo "envship: $ENVSHIP"

# --- the prefix -------------------------------------------------------------------------------
if [ -n "${BENCH_PREFIX:-}" ]; then
    [ -d "$PREFIX/conda-meta" ] || { echo "BENCH_PREFIX=$PREFIX has no conda-meta" >&2; exit 1; }
elif [ ! -f "$PREFIX/conda-meta/bench-data-1.0-0.json" ]; then
    rm -rf "$PREFIX" "$PREFIX.pkgs"
    # (dev profile: it installs four small packages; a release build of rattler takes 12+ min)
    if [ -n "${INSTALL_FIXTURES:-}" ]; then
        "$INSTALL_FIXTURES" "$PREFIX"   # a prebuilt examples/install_fixtures binary
    else
        (cd "$REPO" && cargo run -q -p envship-pack --example install_fixtures -- "$PREFIX")
    fi
    python3 - "$PREFIX" "$SIZE_MB" <<'EOF'
import json, os, shutil, sys, sysconfig
prefix, size_mb = sys.argv[1], int(sys.argv[2])
sources = ["/usr/lib/x86_64-linux-gnu", sysconfig.get_paths()["stdlib"], "/usr/lib/python3",
           "/usr/share/doc", "/usr/lib/gcc", "/usr/share/perl", "/usr/libexec", "/usr/share/locale"]
budget = size_mb * 1024 * 1024
files, total, n = [], 0, 0
while total < budget:
    for src in sources:
        if total >= budget:
            break
        if not os.path.isdir(src):
            continue
        dst_rel = "lib/bench/%d%s" % (n, src)
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, src)
            out_dir = os.path.normpath(os.path.join(prefix, dst_rel, rel_dir))
            os.makedirs(out_dir, exist_ok=True)
            for f in sorted(filenames):
                s = os.path.join(dirpath, f)
                d = os.path.join(out_dir, f)
                rel = os.path.relpath(d, prefix)
                if os.path.islink(s):
                    t = os.readlink(s)
                    if t.startswith("/"):
                        continue  # absolute links point outside the prefix: leave them out
                    os.symlink(t, d)
                    files.append({"_path": rel, "path_type": "softlink"})
                elif os.path.isfile(s):
                    try:
                        shutil.copy2(s, d)
                    except OSError:
                        continue
                    sz = os.path.getsize(d)
                    total += sz
                    files.append({"_path": rel, "path_type": "hardlink", "size_in_bytes": sz})
            if total >= budget:
                break
    n += 1
# conda-pack reads placeholders from the package cache (link.source): give it one, so neither
# tool has to scan these files (envship reads the same facts from paths_data).
pkg_dir = os.path.join(prefix + ".pkgs", "bench-data-1.0-0")
os.makedirs(os.path.join(pkg_dir, "info"), exist_ok=True)
for f in files:  # conda-pack reads unpatched files from the cache: hardlink them there
    src, dst = os.path.join(prefix, f["_path"]), os.path.join(pkg_dir, f["_path"])
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if f["path_type"] == "softlink":
        os.symlink(os.readlink(src), dst)
    else:
        os.link(src, dst)
with open(os.path.join(pkg_dir, "info", "paths.json"), "w") as fh:
    json.dump({"paths_version": 1, "paths": files}, fh)
rec = {"name": "bench-data", "version": "1.0", "build": "0", "build_number": 0, "subdir": "linux-64",
       "channel": "local", "depends": [], "files": [f["_path"] for f in files],
       "url": "file:///bench/bench-data-1.0-0.tar.bz2",
       "link": {"source": pkg_dir, "type": 1},
       "paths_data": {"paths_version": 1, "paths": files}}
with open(os.path.join(prefix, "conda-meta", "bench-data-1.0-0.json"), "w") as fh:
    json.dump(rec, fh)
print("prefix: %d files, %.0f MB" % (len(files), total / 1e6))
EOF
fi
du -sh "$PREFIX"

# --- measuring --------------------------------------------------------------------------------
# run NAME CMD...: RUNS times under /usr/bin/time; records median wall, cpu, rss.
declare -A WALL CPU RSS SIZE LEVELS
run() {
    local name=$1; shift
    local walls=() cpus=() rsss=()
    for _ in $(seq "$RUNS"); do
        sync
        if [ -n "${PRE:-}" ]; then eval "$PRE"; fi
        /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/err.txt" || {
            echo "FAILED: $name: $*" >&2; cat "$WORK/err.txt" >&2; return 1; }
        read -r w u s m <"$WORK/time.txt"
        walls+=("$w"); cpus+=("$(echo "$u + $s" | bc)"); rsss+=("$m")
    done
    WALL[$name]=$(printf '%s\n' "${walls[@]}" | sort -g | sed -n "$(( (RUNS + 1) / 2 ))p")
    CPU[$name]=$(printf '%s\n' "${cpus[@]}" | sort -g | sed -n "$(( (RUNS + 1) / 2 ))p")
    RSS[$name]=$(printf '%s\n' "${rsss[@]}" | sort -g | sed -n "$(( (RUNS + 1) / 2 ))p")
}

OUT=$WORK/out
mkdir -p "$OUT"
rows=()
for fmt in tar.gz tar.zst; do
    if [ "$fmt" = tar.gz ]; then LEVEL=$GZ_LEVEL; else LEVEL=$ZST_LEVEL; fi
    for j in 1 "$NPROC"; do
        cp_out=$OUT/cp-$j.$fmt
        es_out=$OUT/es-$j.$fmt
        run "cp $fmt j$j" "$VENV/bin/conda-pack" -p "$PREFIX" -o "$cp_out" --format "$fmt" \
            --compress-level $LEVEL -j "$j" --force --quiet
        SIZE["cp $fmt j$j"]=$(stat -c %s "$cp_out")
        run "es $fmt j$j" "$ENVSHIP" pack --prefix "$PREFIX" -o "$es_out" --format "$fmt" \
            --compress-level $LEVEL -j "$j"
        SIZE["es $fmt j$j"]=$(stat -c %s "$es_out")
        rows+=("$fmt j$j")
        LEVELS["$fmt j$j"]=$LEVEL
    done
done

# unpack: conda-pack's flow (tar -xf + its conda-unpack, with the venv's python) vs envship's
# flow without envship (tar -xf + sh bin/conda-unpack: perl) vs envship unpack.
U=$WORK/unpacked
PRE="rm -rf $U; mkdir -p $U"
run "cp unpack tar.gz" sh -c "tar -xzf $OUT/cp-$NPROC.tar.gz -C $U && $VENV/bin/python $U/bin/conda-unpack"
run "es unpack tar.gz" sh -c "tar -xzf $OUT/es-$NPROC.tar.gz -C $U && sh $U/bin/conda-unpack"
run "esn unpack tar.gz" "$ENVSHIP" unpack "$OUT/es-$NPROC.tar.gz" "$U"
run "cp unpack tar.zst" sh -c "tar -I zstd -xf $OUT/cp-$NPROC.tar.zst -C $U && $VENV/bin/python $U/bin/conda-unpack"
run "es unpack tar.zst" sh -c "tar -I zstd -xf $OUT/es-$NPROC.tar.zst -C $U && sh $U/bin/conda-unpack"
run "esn unpack tar.zst" "$ENVSHIP" unpack "$OUT/es-$NPROC.tar.zst" "$U"
PRE=
rm -rf "$U"

# --- table ------------------------------------------------------------------------------------
ratio() { echo "scale=2; $1 / $2" | bc; }
echo
echo "prefix: $(du -sh "$PREFIX" | cut -f1), $(find "$PREFIX" -type f | wc -l) files; $RUNS runs, medians; $NPROC cores"
printf '%-15s | %9s %9s %8s %11s | %9s %9s %8s %11s | %7s %6s %6s\n' \
    "pack" "cp wall" "cp cpu" "cp MB" "cp size" "es wall" "es cpu" "es MB" "es size" "speedup" "cpu÷" "size±%"
for r in "${rows[@]}"; do
    c="cp $r"; e="es $r"
    printf '%-15s | %8ss %8ss %8d %11d | %8ss %8ss %8d %11d | %6sx %5sx %6s\n' "$r L${LEVELS[$r]}" \
        "${WALL[$c]}" "${CPU[$c]}" $((RSS[$c] / 1024)) "${SIZE[$c]}" \
        "${WALL[$e]}" "${CPU[$e]}" $((RSS[$e] / 1024)) "${SIZE[$e]}" \
        "$(ratio "${WALL[$c]}" "${WALL[$e]}")" "$(ratio "${CPU[$c]}" "${CPU[$e]}")" \
        "$(echo "scale=2; (${SIZE[$e]} - ${SIZE[$c]}) * 100 / ${SIZE[$c]}" | bc)"
done
echo
printf '%-10s | %-34s | %-34s | %-34s\n' "unpack" "conda-pack: tar + conda-unpack(py)" "envship archive: tar + sh conda-unpack" "envship unpack"
for f in tar.gz tar.zst; do
    printf '%-10s | %8ss cpu %7ss %6d MB | %8ss cpu %7ss %6d MB | %8ss cpu %7ss %6d MB  (%sx vs conda-pack)\n' "$f" \
        "${WALL[cp unpack $f]}" "${CPU[cp unpack $f]}" $((RSS[cp unpack $f] / 1024)) \
        "${WALL[es unpack $f]}" "${CPU[es unpack $f]}" $((RSS[es unpack $f] / 1024)) \
        "${WALL[esn unpack $f]}" "${CPU[esn unpack $f]}" $((RSS[esn unpack $f] / 1024)) \
        "$(ratio "${WALL[cp unpack $f]}" "${WALL[esn unpack $f]}")"
done

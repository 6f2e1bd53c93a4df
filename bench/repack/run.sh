#!/usr/bin/env bash
# bench/repack/run.sh — a re-release. The next release of a ~1 GB binary-heavy prefix (about 5%
# of its bytes changed, a new package added in the middle of the tree), side by side in one run:
#   - conda-pack 0.9.2's pack of the new release;
#   - envship's cold pack (--no-reuse) and warm pack (the block cache as the previous release's
#     pack left it);
#   - envship deploy of the new release over the live old one, linked and with --no-link;
#   - the deployment root's disk growth for each.
#
# Usage: bench/repack/run.sh [SIZE_MB (default 1000)] [RUNS (default 3)]
#   BENCH_WORK=DIR       scratch dir (default /work/targets/bench-repack)
#   CONDAPACK_VENV=DIR   venv for conda-pack (default /work/targets/venv-condapack)
#   GZ_LEVEL             gzip level for both tools (default 4, conda-pack's default)
# The prefix is made as bench/pack/run.sh makes it (fixture packages + copies of system files
# registered in conda-meta), by running that script's prefix step (RUNS=0 does not time anything).
set -euo pipefail

SIZE_MB=${1:-1000}
RUNS=${2:-3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/work/targets/bench-repack}
VENV=${CONDAPACK_VENV:-/work/targets/venv-condapack}
GZ_LEVEL=${GZ_LEVEL:-4}
NPROC=$(nproc)
mkdir -p "$WORK"
P1=$WORK/prefix-$SIZE_MB
P2=$WORK/next-$SIZE_MB

if [ ! -x "$VENV/bin/conda-pack" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "conda-pack==0.9.2" zstandard
fi

# --- a release driver over the libraries (pack with and without the block cache, deploy) -----
DRV=$WORK/driver
mkdir -p "$DRV/src"
cat >"$DRV/Cargo.toml" <<TOML
[package]
name = "envship-repack-bench"
version = "0.0.0"
edition = "2021"
[dependencies]
envship-pack = { path = "$REPO/crates/envship-pack" }
envship-spec = { path = "$REPO/crates/envship-spec" }
envship-deploy = { path = "$REPO/crates/envship-deploy" }
envship-publish = { path = "$REPO/crates/envship-publish" }
[profile.release]
lto = "thin"
codegen-units = 4
[workspace]
TOML
cat >"$DRV/src/main.rs" <<'RS'
// pack PREFIX OUT VERSION CACHE|- ; deploy ARCHIVE ROOT link|no-link
use std::path::PathBuf;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let p = envship_spec::NoProgress;
    match a[1].as_str() {
        "pack" => {
            let reuse = if a[5] == "-" {
                envship_pack::BlockReuse::Off
            } else {
                envship_pack::BlockReuse::Cache { dir: a[5].clone().into(), max_bytes: 8 << 30 }
            };
            let o = envship_pack::PackOptions {
                prefix: a[2].clone().into(),
                output: Some(PathBuf::from(&a[3])),
                name: "bench".into(),
                version: a[4].clone(),
                compress_level: Some(a[6].parse().unwrap()),
                force: true,
                allow_modified_files: true,
                reuse,
                ..Default::default()
            };
            let out = envship_pack::pack(&o, &p).unwrap();
            eprintln!("blocks {:?}", out.blocks);
        }
        "deploy" => {
            let o = envship_deploy::DeployOptions {
                source: a[2].clone(),
                root: a[3].clone().into(),
                name: Some("bench".into()),
                ticket: None,
                test: false,
                test_timeout: None,
                dry_run: false,
                force: false,
                host: None,
                github: envship_publish::GithubConfig {
                    api_url: "http://127.0.0.1:9".into(),
                    repo: String::new(),
                    token: None,
                    retry: Default::default(),
                },
                jobs: 0,
                no_link: a[4] == "no-link",
            };
            let out = envship_deploy::deploy(&o, &p).unwrap();
            for line in out.actions.iter().filter(|l| l.starts_with("extracted") || l.starts_with("linked")) {
                eprintln!("{line}");
            }
        }
        _ => panic!("pack|deploy"),
    }
}
RS
(cd "$DRV" && CARGO_TARGET_DIR=$WORK/driver-target cargo build --release -q)
ES=$WORK/driver-target/release/envship-repack-bench

# --- the two releases -----------------------------------------------------------------------
if [ ! -f "$P1/conda-meta/bench-data-1.0-0.json" ]; then
    BENCH_WORK=$WORK bash "$REPO/bench/pack/run.sh" "$SIZE_MB" 0 >/dev/null 2>&1 || true
    [ -f "$P1/conda-meta/bench-data-1.0-0.json" ] || {
        echo "bench/pack/run.sh did not make $P1" >&2; exit 1; }
fi
if [ ! -f "$P2/conda-meta/bench-new-1.0-0.json" ]; then
    rm -rf "$P2" "$P2.pkgs"
    cp -a "$P1" "$P2"
    mkdir -p "$P2.pkgs"
    python3 - "$P2" <<'PY'
import json, os, shutil, sys
prefix = sys.argv[1]
total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(prefix) for f in fs
            if not os.path.islink(os.path.join(d, f)))
# 1. About 3% of the bytes changed in place: large files of the tree get a new build (a few
# bytes changed in each MiB, sizes kept, as a rebuilt library would differ).
big = sorted((os.path.getsize(os.path.join(d, f)), os.path.join(d, f))
             for d, _, fs in os.walk(os.path.join(prefix, "lib/bench")) for f in fs
             if not os.path.islink(os.path.join(d, f))
             and 1 << 20 < os.path.getsize(os.path.join(d, f)) < 16 << 20)
changed, step = 0, max(1, len(big) // 12)
for size, path in big[::step]:
    if changed > total * 0.03:
        break
    with open(path, "r+b") as fh:
        for off in range(0, size, 1 << 20):
            fh.seek(off); b = fh.read(1); fh.seek(off); fh.write(bytes([b[0] ^ 0x5a]))
    changed += size
# 2. A new package of about 2% of the bytes, in the middle of the tree (lib/bench/0/m...).
dest = os.path.join(prefix, "lib/bench/0/mid-new-package")
src_root = os.path.join(prefix, "lib/bench/0")
added, files = 0, []
for d, _, fs in sorted(os.walk(src_root)):
    if d.startswith(dest):
        continue
    for f in sorted(fs):
        s = os.path.join(d, f)
        if os.path.islink(s) or added > total * 0.02 or os.path.getsize(s) > 4 << 20:
            continue
        rel = os.path.relpath(s, src_root)
        t = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(t), exist_ok=True)
        shutil.copyfile(s, t)
        with open(t, "ab") as fh:
            fh.write(b"new package\n")
        added += os.path.getsize(t)
        files.append({"_path": os.path.relpath(t, prefix), "path_type": "hardlink",
                      "size_in_bytes": os.path.getsize(t)})
# Its package cache entry, as bench/pack makes one (conda-pack reads unpatched files there).
pkg_dir = os.path.join(prefix + ".pkgs", "bench-new-1.0-0")
os.makedirs(os.path.join(pkg_dir, "info"), exist_ok=True)
for f in files:
    dst = os.path.join(pkg_dir, f["_path"])
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.link(os.path.join(prefix, f["_path"]), dst)
with open(os.path.join(pkg_dir, "info", "paths.json"), "w") as fh:
    json.dump({"paths_version": 1, "paths": files}, fh)
rec = {"name": "bench-new", "version": "1.0", "build": "0", "build_number": 0, "subdir": "linux-64",
       "channel": "local", "depends": [], "files": [f["_path"] for f in files],
       "url": "file:///bench/bench-new-1.0-0.tar.bz2",
       "link": {"source": pkg_dir, "type": 1},
       "paths_data": {"paths_version": 1, "paths": files}}
with open(os.path.join(prefix, "conda-meta", "bench-new-1.0-0.json"), "w") as fh:
    json.dump(rec, fh)
print("next release: %.0f MB changed in place, %.0f MB new package, of %.0f MB (%.1f%%)"
      % (changed / 1e6, added / 1e6, total / 1e6, 100 * (changed + added) / total))
PY
fi
du -sh "$P1" "$P2"

# --- measuring (as bench/pack: medians of RUNS under /usr/bin/time) -------------------------
declare -A WALL CPU
run() {
    local name=$1; shift
    local walls=() cpus=()
    for _ in $(seq "$RUNS"); do
        sync
        if [ -n "${PRE:-}" ]; then eval "$PRE"; fi
        /usr/bin/time -f "%e %U %S" -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/err-$name.txt" || {
            echo "FAILED: $name: $*" >&2; cat "$WORK/err-$name.txt" >&2; return 1; }
        read -r w u s <"$WORK/time.txt"
        walls+=("$w"); cpus+=("$(echo "$u + $s" | bc)")
    done
    WALL[$name]=$(printf '%s\n' "${walls[@]}" | sort -g | sed -n "$(( (RUNS + 1) / 2 ))p")
    CPU[$name]=$(printf '%s\n' "${cpus[@]}" | sort -g | sed -n "$(( (RUNS + 1) / 2 ))p")
}
OUT=$WORK/out
CACHE=$WORK/block-cache
mkdir -p "$OUT"
# The previous release, packed with the cache: the state a nightly job finds.
rm -rf "$CACHE" "$CACHE.after-1"
"$ES" pack "$P1" "$OUT/bench-1-linux-64.tar.gz" 1 "$CACHE" "$GZ_LEVEL" 2>/dev/null
cp -a "$CACHE" "$CACHE.after-1"

run cp "$VENV/bin/conda-pack" -p "$P2" -o "$OUT/cp-2.tar.gz" --compress-level "$GZ_LEVEL" \
    -j "$NPROC" --force --quiet
run cold "$ES" pack "$P2" "$OUT/cold/bench-2-linux-64.tar.gz" 2 - "$GZ_LEVEL"
PRE="rm -rf $CACHE; cp -a $CACHE.after-1 $CACHE"
run warm "$ES" pack "$P2" "$OUT/bench-2-linux-64.tar.gz" 2 "$CACHE" "$GZ_LEVEL"
PRE=
grep blocks "$WORK/err-warm.txt" || true
identical=no
cmp -s "$OUT/cold/bench-2-linux-64.tar.gz" "$OUT/bench-2-linux-64.tar.gz" && identical=yes

# Deploy: release 1 is live; release 2 goes over it, linked and not.
ROOT=$WORK/root
rm -rf "$ROOT"
"$ES" deploy "$OUT/bench-1-linux-64.tar.gz" "$ROOT" link 2>/dev/null
reset_root="rm -rf $ROOT/bench/2 $ROOT/bench/.2.*; ln -sfn 1 $ROOT/bench/current"
before=$(du -sb "$ROOT" | cut -f1)
PRE=$reset_root
run linked "$ES" deploy "$OUT/bench-2-linux-64.tar.gz" "$ROOT" link
grow_linked=$(( $(du -sb "$ROOT" | cut -f1) - before ))
cat "$WORK/err-linked.txt"
run full "$ES" deploy "$OUT/bench-2-linux-64.tar.gz" "$ROOT" no-link
grow_full=$(( $(du -sb "$ROOT" | cut -f1) - before ))
PRE=

ratio() { echo "scale=2; $1 / $2" | bc; }
size() { stat -c %s "$1"; }
env_bytes=$(du -sb "$P2" | cut -f1)
echo
echo "next release: $(du -sh "$P2" | cut -f1), $(find "$P2" -type f | wc -l) files; $RUNS runs, medians; $NPROC cores; gzip level $GZ_LEVEL"
printf '%-34s %9s %9s %12s\n' "" "wall" "cpu" "size"
printf '%-34s %8ss %8ss %12d\n' "conda-pack -j$NPROC" "${WALL[cp]}" "${CPU[cp]}" "$(size "$OUT/cp-2.tar.gz")"
printf '%-34s %8ss %8ss %12d\n' "envship pack, cold (--no-reuse)" "${WALL[cold]}" "${CPU[cold]}" "$(size "$OUT/cold/bench-2-linux-64.tar.gz")"
printf '%-34s %8ss %8ss %12d\n' "envship pack, warm" "${WALL[warm]}" "${CPU[warm]}" "$(size "$OUT/bench-2-linux-64.tar.gz")"
printf '%-34s %8ss %8ss %12s\n' "envship deploy, linked" "${WALL[linked]}" "${CPU[linked]}" "+$grow_linked"
printf '%-34s %8ss %8ss %12s\n' "envship deploy, --no-link" "${WALL[full]}" "${CPU[full]}" "+$grow_full"
echo
echo "warm pack vs conda-pack:   $(ratio "${WALL[cp]}" "${WALL[warm]}")x (target >= 10x)"
echo "cold pack vs conda-pack:   $(ratio "${WALL[cp]}" "${WALL[cold]}")x"
echo "warm vs cold:              $(ratio "${WALL[cold]}" "${WALL[warm]}")x, byte-identical: $identical"
echo "size vs conda-pack:        $(echo "scale=2; ($(size "$OUT/bench-2-linux-64.tar.gz") - $(size "$OUT/cp-2.tar.gz")) * 100 / $(size "$OUT/cp-2.tar.gz")" | bc)%"
echo "linked vs full deploy:     $(ratio "${WALL[full]}" "${WALL[linked]}")x (target >= 5x)"
echo "root growth, linked:       $(echo "scale=1; $grow_linked * 100 / $env_bytes" | bc)% of the environment (target <= 10%)"
echo "root growth, --no-link:    $(echo "scale=1; $grow_full * 100 / $env_bytes" | bc)%"

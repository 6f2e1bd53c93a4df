#!/usr/bin/env bash
# Build CPython 3.9 (Debian bullseye's 3.9.2 source) for glibc 2.12 (RHEL 6, lcls-rhel6) with
# `zig cc -target x86_64-linux-gnu.2.12`, with zlib and libffi (bullseye's sources too) built
# static by the same compiler. The result is a relocatable prefix (static interpreter, no RPATH;
# it finds its standard library from the `lib/python3.9/os.py` landmark beside `bin/`) that the
# test support repackages as a conda `python` package (envship-test-support's `python212`).
#
#   scripts/build-python-glibc2.12.sh [OUT_DIR]
#
# OUT_DIR defaults to /var/cache/envship-ci/python-glibc2.12-r$RECIPE. Idempotent: a finished
# OUT_DIR (it has envship-build.json) is reused as is; bump RECIPE when the recipe changes.
# The last line printed is OUT_DIR. Needs: apt-get (with Debian's keyring), curl, python3 with
# venv, make, objdump/readelf; no root (apt runs with a private state dir).
#
# Why each step is as it is:
# - The host's glibc headers (2.36 on bookworm) clash with zig's 2.12 ones, so setup.py must not
#   add /usr/include, /usr/include/<multiarch>, /usr/local/include or the host's library dirs:
#   setup.py is patched to search only CPPFLAGS/LDFLAGS (the static zlib/libffi here). Modules
#   whose libraries we do not build (ssl, sqlite, bz2, lzma, readline, curses, dbm, uuid, crypt,
#   nis, tkinter) are disabled in Modules/Setup.local, as are the test-only modules.
# - pkg-config sees only our own libffi/zlib (PKG_CONFIG_LIBDIR), or configure would point
#   _ctypes at the host's libffi headers.
# - No PGO/LTO, no test suite, -O2 without -g: CI builds this from scratch each run.
set -euo pipefail

RECIPE=1
PY_SOURCE=python3.9
REQUIRED_MODULES="zlib _ctypes math cmath _struct _json _pickle _datetime select _posixsubprocess
  binascii _random _sha1 _sha256 _sha512 _md5 _blake2 _sha3 unicodedata _socket array _bisect
  _heapq _csv fcntl grp termios resource mmap _multiprocessing _posixshmem _queue _contextvars
  _decimal pyexpat _elementtree _opcode _lsprof _asyncio _statistics _zoneinfo _multibytecodec"
# ziglang from PyPI: the compiler and its glibc 2.12 stubs.
ZIGLANG_VERSION=${ENVSHIP_ZIGLANG_VERSION:-0.17.1}
JOBS=${ENVSHIP_BUILD_JOBS:-2}

out=${1:-/var/cache/envship-ci/python-glibc2.12-r$RECIPE}
out=$(realpath -m "$out")
if [ -f "$out/envship-build.json" ] && [ -x "$out/bin/python3.9" ]; then
  echo "python for glibc 2.12: reusing $out (recipe r$RECIPE)" >&2
  echo "$out"
  exit 0
fi

start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*" >&2; }
cache_root=$(dirname "$out")
mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/.python-glibc2.12-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$work/log
mkdir -p "$log"
# Show the end of a step's log when it fails, not a bare exit code.
run() {
  local name=$1; shift
  if ! "$@" >"$log/$name.log" 2>&1; then
    echo "step $name failed: $*" >&2
    tail -40 "$log/$name.log" >&2
    exit 1
  fi
}

stamp "sources: bullseye's $PY_SOURCE, zlib, libffi (deb-src, signed Sources index)"
apt_dir=$work/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$work/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main" \
  >"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/none"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root")
run apt-update apt-get "${apt_opts[@]}" update
# --print-uris lists each file with the SHA256 from the signed index; only the upstream
# tarballs are needed (Debian's patches are not applied: the build below is upstream's).
(cd "$work/src" && apt-get "${apt_opts[@]}" --print-uris source "$PY_SOURCE" zlib libffi) \
  >"$log/uris.log"
declare -A tarball
while read -r uri file _size hash; do
  case $file in *.orig.tar.*) ;; *) continue ;; esac
  uri=${uri//\'/}
  curl -fsSL --retry 3 -o "$work/src/$file" "$uri"
  echo "${hash#SHA256:}  $work/src/$file" | sha256sum -c --quiet -
  case $file in
    python3.9_*) tarball[python]=$file ;;
    zlib_*) tarball[zlib]=$file ;;
    libffi_*) tarball[libffi]=$file ;;
  esac
done < <(grep "^'" "$log/uris.log")
for k in python zlib libffi; do
  [ -n "${tarball[$k]:-}" ] || { echo "no upstream tarball for $k in:" >&2; cat "$log/uris.log" >&2; exit 1; }
done

stamp "compiler: ziglang $ZIGLANG_VERSION (PyPI) in a venv"
venv=$cache_root/venv-ziglang-$ZIGLANG_VERSION
if [ ! -x "$venv/bin/python" ]; then
  run venv python3 -m venv "$venv.tmp"
  run ziglang "$venv.tmp/bin/pip" install --quiet "ziglang==$ZIGLANG_VERSION"
  rm -rf "$venv" && mv "$venv.tmp" "$venv"
fi
zig=$("$venv/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
tools=$work/tools
mkdir -p "$tools"
# The zig binary directly, not `python -m ziglang`: configure runs the compiler ~1000 times.
# -Wno-error=date-time: zig's clang rejects __DATE__/__TIME__ (CPython's build info) otherwise.
printf '#!/bin/sh\nexec "%s" cc -target x86_64-linux-gnu.2.12 -Wno-error=date-time "$@"\n' "$zig" >"$tools/cc"
printf '#!/bin/sh\nexec "%s" ar "$@"\n' "$zig" >"$tools/ar"
printf '#!/bin/sh\nexec "%s" ranlib "$@"\n' "$zig" >"$tools/ranlib"
chmod +x "$tools"/*
export CC=$tools/cc AR=$tools/ar RANLIB=$tools/ranlib
deps=$work/deps
export PKG_CONFIG_PATH=$deps/lib/pkgconfig PKG_CONFIG_LIBDIR=$deps/lib/pkgconfig
mkdir -p "$work/build"

stamp "zlib (static)"
tar -xf "$work/src/${tarball[zlib]}" -C "$work/build"
(
  cd "$work/build"/zlib-*/
  CFLAGS="-O2 -fPIC" run zlib-configure ./configure --static --prefix="$deps"
  run zlib-make make -j"$JOBS" libz.a
  run zlib-install make install
)

stamp "libffi (static)"
tar -xf "$work/src/${tarball[libffi]}" -C "$work/build"
(
  cd "$work/build"/libffi-*/
  CFLAGS="-O2 -fPIC" run libffi-configure ./configure --disable-shared --enable-static --with-pic \
    --disable-docs --disable-multi-os-directory --prefix="$deps"
  run libffi-make make -j"$JOBS"
  run libffi-install make install
)

stamp "CPython: configure"
tar -xf "$work/src/${tarball[python]}" -C "$work/build"
src=$(echo "$work/build"/Python-3.9*/)
python3 - "$src/setup.py" <<'EOF'
import sys
path = sys.argv[1]
text = open(path).read()
patches = [
    ("            add_dir_to_list(self.compiler.library_dirs, '/usr/local/lib')\n"
     "            add_dir_to_list(self.compiler.include_dirs, '/usr/local/include')\n",
     "            pass  # envship: no host /usr/local (glibc 2.12 build)\n"),
    ("        self.add_multiarch_paths()\n",
     "        pass  # envship: no host multiarch dirs (glibc 2.12 build)\n"),
    ("        system_lib_dirs = ['/lib64', '/usr/lib64', '/lib', '/usr/lib']\n"
     "        system_include_dirs = ['/usr/include']\n",
     "        system_lib_dirs = []  # envship: only CPPFLAGS/LDFLAGS dirs\n"
     "        system_include_dirs = []\n"),
]
for old, new in patches:
    if text.count(old) != 1:
        sys.exit(f"setup.py changed, patch does not apply: {old!r}")
    text = text.replace(old, new)
open(path, "w").write(text)
EOF
cat >"$src/Modules/Setup.local" <<'EOF'
# envship: libraries not built for glibc 2.12, and test-only modules.
*disabled*
_tkinter _curses _curses_panel readline _gdbm _dbm nis ossaudiodev _sqlite3 _ssl _hashlib _bz2
_lzma _uuid _crypt _testcapi _testinternalcapi _testbuffer _testimportmultiple _testmultiphase
_xxtestfuzz _ctypes_test xx xxlimited _xxsubinterpreters
EOF
prefix=/opt/envship-python3.9
(
  cd "$src"
  run python-configure ./configure --prefix="$prefix" --with-system-ffi --without-ensurepip \
    CPPFLAGS="-I$deps/include" LDFLAGS="-L$deps/lib" OPT="-DNDEBUG -fwrapv -O2 -Wall"
  stamp "CPython: make -j$JOBS"
  run python-make make -j"$JOBS"
  stamp "CPython: install"
  run python-install make install DESTDIR="$work/dest"
)

stamp "check: required modules, GLIBC versions"
staged=$work/dest$prefix
# Byte code is left out: the conda package is repackaged without it.
find "$staged" -name __pycache__ -type d -prune -exec rm -rf {} +
"$staged/bin/python3.9" -c "
import importlib, sys
missing = []
for name in sys.argv[1].split():
    try:
        importlib.import_module(name)
    except ImportError as e:
        missing.append(f'{name} ({e})')
if missing:
    sys.exit('modules missing: ' + ', '.join(missing))
" "$REQUIRED_MODULES"
failed=$(grep -A3 "Failed to build these modules" "$log/python-make.log" || true)
if [ -n "$failed" ]; then
  echo "$failed" >&2
  exit 1
fi
elves=$(find "$staged" -type f \( -name '*.so' -o -path '*/bin/python3.9' \))
glibc_max=$(for f in $elves; do objdump -T "$f"; done | grep -o 'GLIBC_[0-9.]*' | sort -u -V | tail -1)
case $glibc_max in
  GLIBC_2.[0-9] | GLIBC_2.1[0-2] | GLIBC_2.[0-9].[0-9] | GLIBC_2.1[0-2].[0-9]) ;;
  *) echo "the build needs $glibc_max, newer than GLIBC_2.12" >&2; exit 1 ;;
esac
rpaths=$(for f in $elves; do readelf -d "$f" | grep -E 'RPATH|RUNPATH' || true; done)
if [ -n "$rpaths" ]; then
  echo "unexpected RPATH/RUNPATH in the build: $rpaths" >&2
  exit 1
fi
modules=$(ls "$staged/lib/python3.9/lib-dynload" | sed 's/\.cpython-39-x86_64-linux-gnu\.so$//' | tr '\n' ' ')
seconds=$(( $(date +%s) - start ))
"$staged/bin/python3.9" - "$staged/envship-build.json" <<EOF
import json, sys
json.dump({
    "recipe": $RECIPE,
    "python": "$("$staged/bin/python3.9" -c 'import platform; print(platform.python_version())')",
    "sources": {k: v for k, v in [("python", "${tarball[python]}"), ("zlib", "${tarball[zlib]}"), ("libffi", "${tarball[libffi]}")]},
    "compiler": "zig cc -target x86_64-linux-gnu.2.12 (ziglang $ZIGLANG_VERSION)",
    "glibc_max": "$glibc_max",
    "extension_modules": "$modules".split(),
    "build_seconds": $seconds,
}, open(sys.argv[1], "w"), indent=1)
EOF
rm -rf "$out.tmp"
mv "$staged" "$out.tmp"
rm -rf "$out"
mv "$out.tmp" "$out"
stamp "done: $out needs at most $glibc_max; lib-dynload: $modules"
echo "$out"

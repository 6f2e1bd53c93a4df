#!/usr/bin/env bash
# Rebuilds the bundled example channels (examples/*/channel) from the C sources here.
# The binaries are built so they need no glibc symbol version (hello, libhello) or only
# memcpy@GLIBC_2.14 (memcpy-demo); see the comments in each source.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
F=(-O2 -s -ffreestanding -fno-builtin -fno-stack-protector -fno-asynchronous-unwind-tables
   -Wl,--hash-style=both -Wl,--build-id=none -Wl,-z,noseparate-code)
gcc "${F[@]}" -fPIC -shared -nostdlib -Wl,-soname,libhello.so.1 -o "$out/libhello.so.1" "$here/libhello.c"
gcc "${F[@]}" -nostdlib -nostartfiles -o "$out/hello" "$here/hello.c" "$out/libhello.so.1" \
    -Wl,-rpath,'$ORIGIN/../lib' -Wl,--enable-new-dtags
gcc -O2 -s -fno-builtin -fno-stack-protector -Wl,--hash-style=both -Wl,--build-id=none \
    -Wl,-z,noseparate-code -nostartfiles -o "$out/memcpy-demo" "$here/memcpy_demo.c"
cd "$root"
cargo run -q -p envship-test-support --bin make-example-channels -- "$out" "$root/examples"

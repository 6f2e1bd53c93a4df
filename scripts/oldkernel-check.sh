#!/usr/bin/env bash
# The static envship on a production host's terms: inside a bullseye rootfs (chroot: glibc 2.31,
# no host library involved) and under a seccomp filter that makes every system call added after
# Linux 2.6.32 answer ENOSYS (RHEL 6's kernel), run
#   --version, targets, an audit of the binary itself for lcls-rhel6,
#   unpack (tar.gz and tar.zst), deploy twice, deploy --force over the live version, rollback, audit,
# and check after each step that `current` is right and nothing is left behind. Fails loudly.
#
#   scripts/oldkernel-check.sh STATIC_ENVSHIP ROOTFS
#
# Needs root (chroot, mounts in a private mount namespace), gcc and libseccomp-dev (the filter
# helper scripts/seccomp-2.6.32.c is linked statically so it runs inside the rootfs).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:?usage: oldkernel-check.sh STATIC_ENVSHIP ROOTFS}"
rootfs="${2:?usage: oldkernel-check.sh STATIC_ENVSHIP ROOTFS}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
rootfs="$(cd "$rootfs" && pwd)"

fail() {
  echo "oldkernel-check: FAILED: $*" >&2
  exit 1
}
step() { echo "oldkernel-check: $*" >&2; }

[ -x "$rootfs/usr/bin/env" ] || fail "$rootfs is not a root file system"
if readelf -lW "$bin" | grep -q INTERP || readelf -dW "$bin" | grep -q NEEDED; then
  fail "$bin is not a static executable"
fi

work="$(mktemp -d)"
# Everything the chroot sees of ours lives under this one directory of the rootfs.
inside=/envship-oldkernel-check
box="$rootfs$inside"
cleanup() {
  rm -rf "$work" "$box"
}
trap cleanup EXIT
rm -rf "$box"
mkdir -p "$box/bin" "$box/dist/zst"

step "building the 2.6.32 seccomp filter helper (static)"
gcc -O2 -static -o "$box/seccomp-2.6.32" "$repo/scripts/seccomp-2.6.32.c" -lseccomp \
  || fail "cannot build scripts/seccomp-2.6.32.c (gcc, libseccomp-dev)"
cp "$bin" "$box/bin/envship"

# The example, locked, built and packed as versions 1 and 2 by the static binary under the same
# filter (on the host: the bundled channel is a local directory).
step "packing examples/hello as versions 1 and 2"
cp -r "$repo/examples/hello" "$work/hello"
rm -rf "$work/hello/.envship" "$work/hello/dist" "$work/hello/envship.lock"
(
  cd "$work/hello"
  for cmd in lock build; do
    "$box/seccomp-2.6.32" "$bin" --quiet "$cmd" --offline --cache-dir "$work/cache" >&2 \
      || fail "envship $cmd of examples/hello"
  done
  for v in 1 2; do
    "$box/seccomp-2.6.32" "$bin" --quiet pack --name hello --version "$v" \
      --prefix "$work/hello/.envship/build/hello-envship" -o "$box/dist/hello-$v.tar.gz" >&2 \
      || fail "envship pack of version $v"
  done
  # RHEL 6's tar cannot read zstd: `envship unpack` is how a tar.zst gets onto such a host.
  "$box/seccomp-2.6.32" "$bin" --quiet pack --name hello --version 1 --format tar.zst \
    --prefix "$work/hello/.envship/build/hello-envship" -o "$box/dist/zst/hello-1.tar.zst" >&2 \
    || fail "envship pack --format tar.zst"

)

# Run a shell script inside the rootfs, under the filter, with /proc and /dev mounted in a
# private mount namespace (they vanish with it).
in_rootfs() {
  unshare --mount --propagation private -- sh -c '
    set -e
    mount -t proc proc "$1/proc"
    mount --rbind /dev "$1/dev"
    exec chroot "$1" "$2/seccomp-2.6.32" /bin/bash -c "$3"
  ' in_rootfs "$rootfs" "$inside" "$1"
}

step "running the checks inside $rootfs under the filter"
in_rootfs "
set -euo pipefail
cd $inside
PATH=$inside/bin:/usr/bin:/bin
export NO_COLOR=1 RUST_LOG=warn
fail() { echo \"oldkernel-check (in the rootfs): FAILED: \$*\" >&2; exit 1; }
ok() { echo \"oldkernel-check (in the rootfs): ok: \$*\" >&2; }
root=$inside/root
env=\$root/hello
check_current() {
  [ \"\$(readlink \$env/current)\" = \"\$1\" ] || fail \"current is \$(readlink \$env/current), not \$1, after \$2\"
  # A version's records (.VERSION.{blocks,tree,manifest}.json) belong beside it; anything
  # else hidden is a leftover, and so is a record whose version is gone.
  left=\$(ls -A \$env | grep '^\\.' | grep -Ev '^\\..+\\.(blocks|tree|manifest)\\.json\$' || true)
  [ -z \"\$left\" ] || fail \"left behind after \$2: \$left\"
  for record in \$(ls -A \$env | grep -E '^\\..+\\.(blocks|tree|manifest)\\.json\$' || true); do
    version=\$(echo \"\$record\" | sed -E 's/^\\.(.+)\\.(blocks|tree|manifest)\\.json\$/\\1/')
    [ -d \"\$env/\$version\" ] || fail \"\$record left behind after \$2 without version \$version\"
  done
  \$env/current/bin/hello | grep -q 'Hello from libhello' || fail \"hello does not run after \$2\"
  [ \"\$(\$env/\$1/bin/hello --prefix)\" = \"\$env/\$1\" ] || fail \"\$1 is not relocated to \$env/\$1 after \$2\"
  ok \"\$2: current -> \$1, nothing left behind\"
}

envship --version || fail 'envship --version'
envship targets >/dev/null || fail 'envship targets'
envship audit --target lcls-rhel6 --build-prefix '' bin >audit-self.txt \
  || { cat audit-self.txt >&2; fail 'the static binary does not pass its own audit for lcls-rhel6'; }
ok 'the binary audits itself clean for lcls-rhel6'

envship unpack dist/hello-1.tar.gz unpacked/hello >/dev/null || fail unpack
[ \"\$(unpacked/hello/bin/hello --prefix)\" = $inside/unpacked/hello ] || fail 'unpack did not relocate'
ok 'unpack'
envship unpack dist/zst/hello-1.tar.zst unpacked-zst/hello >/dev/null || fail 'unpack of the tar.zst'
[ \"\$(unpacked-zst/hello/bin/hello --prefix)\" = $inside/unpacked-zst/hello ] || fail 'unpack of the tar.zst did not relocate'
ok 'unpack of the tar.zst'

envship deploy --root \$root dist/hello-1.tar.gz >/dev/null || fail 'deploy 1'
check_current 1 'deploy 1'
envship deploy --root \$root dist/hello-2.tar.gz >/dev/null || fail 'deploy 2'
check_current 2 'deploy 2'
inode=\$(stat -c %i \$env/2)
envship deploy --root \$root --force --json dist/hello-2.tar.gz >force.json || fail 'deploy --force 2'
grep -q 'by two renames' force.json || fail 'deploy --force did not take the path without renameat2: is the filter on?'
[ \"\$(stat -c %i \$env/2)\" != \"\$inode\" ] || fail 'deploy --force did not replace 2'
check_current 2 'deploy --force 2'
envship deploy --root \$root --rollback hello >/dev/null || fail rollback
check_current 1 rollback
for v in current 1 2; do
  envship verify \$env/\$v >/dev/null || fail \"verify \$v: the deployed tree differs from its record\"
done
ok 'verify of every deployed version against its tree record'
# Signing needs random bytes: without getrandom(2) (Linux 3.17) they must come from /dev/urandom.
envship keygen --output facility >/dev/null || fail 'keygen'
mkdir -p drop
envship publish --to drop --sign-key facility.key dist/hello-1.tar.gz >/dev/null || fail 'publish --sign-key'
[ -f drop/hello-1.tar.gz.minisig ] || fail 'publish --sign-key wrote no drop/hello-1.tar.gz.minisig'
envship verify-release drop/hello-1.tar.gz --trust-key facility.pub >/dev/null \
  || fail 'verify-release of the signed archive'
envship keygen --output other >/dev/null || fail 'keygen of a second key'
if envship verify-release drop/hello-1.tar.gz --trust-key other.pub >/dev/null 2>&1; then
  fail 'verify-release accepted a signature by an untrusted key'
fi
ok 'keygen, publish --sign-key and verify-release (a signature by another key refused)'
envship audit --target lcls-rhel6 --build-prefix '' \$env/1 >audit-env.txt \
  || { cat audit-env.txt >&2; fail 'audit of the deployed environment'; }
ok 'audit of the deployed environment'
" || fail "a check inside the rootfs failed (above)"
step "all checks passed"

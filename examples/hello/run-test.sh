#!/usr/bin/env bash
# Runs with the environment activated, as in the original workflow's contract.
set -euo pipefail
echo "testing ${ENVIRONMENT_NAME:-?} in $CONDA_PREFIX"
hello | grep -q "Hello from libhello"
# The binary placeholder was rewritten to wherever the archive was unpacked.
test "$(hello --prefix)" = "$CONDA_PREFIX"
hello-info | grep -qF "lives in $CONDA_PREFIX"
grep -qF "data_dir = $CONDA_PREFIX/share/hello" "$CONDA_PREFIX/etc/hello/hello.conf"
hello-greet | grep -q "Hello, production"
test "${HELLO_ACTIVATED:-}" = 1
test "${HELLO_GREETING:-}" = "from environment.yml"
echo "all hello checks passed"

#!/usr/bin/env bash
# Runs at the destination prefix: solve a linear system with numpy (OpenBLAS's LAPACK) and check
# the solution, then call into the C library through ctypes (libffi).
set -euo pipefail
test "$CONDA_PREFIX" = /opt/envship/lcls-numpy
python - <<'PY'
import ctypes, os, sys
import numpy as np

assert sys.prefix == "/opt/envship/lcls-numpy", sys.prefix
rng = np.random.default_rng(20261129)
n = 300
a = rng.standard_normal((n, n)) + n * np.eye(n)
x = rng.standard_normal(n)
solved = np.linalg.solve(a, a @ x)
error = float(np.abs(solved - x).max())
assert error < 1e-10, error
assert ctypes.CDLL(None).getpid() == os.getpid()
print(f"numpy {np.__version__} solved a {n}x{n} system (max error {error:.1e}) with python "
      f"{sys.version.split()[0]} at {sys.prefix} on {os.confstr('CS_GNU_LIBC_VERSION')}")
PY
pip --version

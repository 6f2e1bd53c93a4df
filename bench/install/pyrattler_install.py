"""Install an envship.lock with py-rattler's installer (the same rattler crates envship uses).

Usage: pyrattler_install.py LOCK PREFIX CACHE_DIR
Stdout: {"install_seconds": S} (in-process: reading the lock + install, no interpreter start).
"""

import asyncio
import json
import os
import sys
import time

import rattler
from rattler import LockFile


async def main() -> None:
    lock, prefix, cache = sys.argv[1:4]
    start = time.perf_counter()
    env = LockFile.from_path(lock).default_environment()
    platform = next(p for p in env.platforms() if p.name == "linux-64")
    records = env.conda_repodata_records_for_platform(platform)
    await rattler.install(records, prefix, cache_dir=cache, show_progress=False)
    print(json.dumps({"install_seconds": time.perf_counter() - start}))


asyncio.run(main())
# py-rattler 0.28 sometimes aborts (SIGABRT) while the interpreter tears down its runtime, after
# the work is done; leave without the teardown so the bench measures the work, not the crash.
sys.stdout.flush()
os._exit(0)

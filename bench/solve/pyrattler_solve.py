"""Solve with py-rattler the way `envship lock` does (gateway over file:// channels, resolvo,
strict channel priority, the target's virtual packages), print the chosen file names as JSON.

Usage: pyrattler_solve.py CACHE_DIR CHANNEL_URL[,URL...] SPEC[;SPEC...] VPKG[;VPKG...]
  VPKG is NAME=VERSION=BUILD, e.g. __glibc=2.12=0.
Stdout: {"files": [...], "solve_seconds": S} (in-process time: gateway query + solve).
"""

import asyncio
import json
import os
import sys
import time

import rattler
from rattler import BuildString, Channel, GenericVirtualPackage, PackageName, Platform, Version


async def main() -> None:
    cache_dir, channels, specs, vpkgs = sys.argv[1:5]
    virtual = []
    for v in vpkgs.split(";"):
        name, version, build = v.split("=")
        virtual.append(GenericVirtualPackage(PackageName(name), Version(version), BuildString(build)))
    start = time.perf_counter()
    records = await rattler.solve(
        sources=[Channel(c) for c in channels.split(",")],
        specs=specs.split(";"),
        gateway=rattler.Gateway(cache_dir=cache_dir),
        platforms=[Platform("linux-64"), Platform("noarch")],
        virtual_packages=virtual,
    )
    elapsed = time.perf_counter() - start
    print(json.dumps({"files": sorted(r.file_name for r in records), "solve_seconds": elapsed}))


asyncio.run(main())
# py-rattler 0.28 sometimes aborts (SIGABRT) while the interpreter tears down its runtime, after
# the work is done; leave without the teardown so the bench measures the work, not the crash.
sys.stdout.flush()
os._exit(0)

"""bench/install driver: `envship build` vs py-rattler's installer on the same lock.

Cold: empty package cache, new prefix (every archive is read from the file:// channel,
verified and extracted). Warm: cache filled, new prefix (link only). No-op: envship again on the
built prefix. Each measured RUNS times as a whole process, alternating tools; medians printed.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ENVSHIP, PYTHON, WORK, RUNS = sys.argv[1:5]
RUNS = int(RUNS)
HERE = os.path.dirname(os.path.abspath(__file__))
ENV = os.path.join(WORK, "input", "environment.yml")
CHANNEL = os.path.join(WORK, "input", "channel")
LOCK = os.path.join(WORK, "input", "envship.lock")


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.stat(p).st_size
    return total


def fresh(*paths):
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)


def timed(cmd):
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, out


def envship_build(prefix, cache):
    return timed([ENVSHIP, "--quiet", "build", "-f", ENV, "--prefix", prefix, "--cache-dir", cache,
                  "--offline", "--json"])


def pyrattler_install(prefix, cache):
    wall, out = timed([PYTHON, os.path.join(HERE, "pyrattler_install.py"), LOCK, prefix, cache])
    return wall, json.loads(out)["install_seconds"]


subprocess.run([ENVSHIP, "--quiet", "lock", "-f", ENV, "--offline", "--cache-dir",
                os.path.join(WORK, "cache-lock")], check=True, stdout=subprocess.DEVNULL)
archives = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(CHANNEL) for f in fs
               if f.endswith((".conda", ".tar.bz2")))
npkgs = sum(1 for r, _, fs in os.walk(CHANNEL) for f in fs if f.endswith(".conda"))

es_prefix, es_cache = os.path.join(WORK, "es-prefix"), os.path.join(WORK, "es-cache")
pr_prefix, pr_cache = os.path.join(WORK, "pr-prefix"), os.path.join(WORK, "pr-cache")
res = {k: [] for k in ("es cold", "es warm", "es noop", "pr cold", "pr warm", "pr cold in",
                       "pr warm in")}
for _ in range(RUNS):
    fresh(es_prefix, es_cache)
    res["es cold"].append(envship_build(es_prefix, es_cache)[0])
    fresh(pr_prefix, pr_cache)
    wall, inproc = pyrattler_install(pr_prefix, pr_cache)
    res["pr cold"].append(wall)
    res["pr cold in"].append(inproc)
    fresh(es_prefix)
    res["es warm"].append(envship_build(es_prefix, es_cache)[0])
    fresh(pr_prefix)
    wall, inproc = pyrattler_install(pr_prefix, pr_cache)
    res["pr warm"].append(wall)
    res["pr warm in"].append(inproc)
    wall, out = envship_build(es_prefix, es_cache)
    assert json.loads(out)["noop"], "unchanged lock must be a no-op: %s" % out
    res["es noop"].append(wall)

# The no-op rebuild of an environment with a `pip:` section: the same packages plus psutil's
# manylinux2010 wheel from the fixtures (offline: --find-links, --no-index), built once, then
# built again unchanged RUNS times. Its own directory, so its lock is not the one above.
PIP_DIR = os.path.join(WORK, "input-pip")
WHEELS = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "fixtures", "wheels"))
os.makedirs(PIP_DIR, exist_ok=True)
with open(ENV) as f:
    pip_env = f.read().rstrip("\n") + "\n  - pip:\n    - psutil==6.1.1\n"
with open(os.path.join(PIP_DIR, "environment.yml"), "w") as f:
    f.write(pip_env)
pip_prefix = os.path.join(WORK, "es-prefix-pip")
fresh(pip_prefix)


def envship_build_pip():
    return timed([ENVSHIP, "--quiet", "build", "-f", os.path.join(PIP_DIR, "environment.yml"),
                  "--prefix", pip_prefix, "--cache-dir", es_cache, "--offline", "--find-links",
                  WHEELS, "--no-index", "--json"])


first = json.loads(envship_build_pip()[1])
assert first["pip"]["packages"], "the pip section must install psutil: %s" % first
res["es noop pip"] = []
for _ in range(RUNS):
    wall, out = envship_build_pip()
    out = json.loads(out)
    assert out["noop"] and out["pip"]["reused"], "unchanged pip section must be a no-op: %s" % out
    res["es noop pip"].append(wall)

installed = du(es_prefix)
m = {k: statistics.median(v) for k, v in res.items()}
print("bench/install: %d packages, %.1f MB of archives, %.1f MB installed; %d runs each, medians; "
      "%d cores" % (npkgs, archives / 1e6, installed / 1e6, RUNS, os.cpu_count()))
print()
print("| install | envship build | py-rattler (process) | py-rattler (in-process) | ratio (process) "
      "| ratio (vs in-process) |")
print("|---|---|---|---|---|---|")
for kind in ("cold", "warm"):
    es, pr, pin = m["es " + kind], m["pr " + kind], m["pr %s in" % kind]
    print("| %s | %.2f s (%.0f MB/s archives, %.0f MB/s installed) | %.2f s | %.2f s | %.2fx | %.2fx |"
          % (kind, es, archives / 1e6 / es, installed / 1e6 / es, pr, pin, es / pr, es / pin))
print("| no-op rebuild | %.3f s | | | | |" % m["es noop"])
print("| no-op rebuild with a pip: section | %.3f s | | | | |" % m["es noop pip"])
print()
print("ratio = envship / py-rattler (below 1 = envship faster). envship validates every cached")
print("file's sha256 before linking (ValidationMode::Full); py-rattler's default does not.")

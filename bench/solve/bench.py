"""bench/solve driver: `envship lock` vs py-rattler on the same repodata, same virtual packages.

Both sides are measured as whole processes (what a user waits for: start, read repodata, solve,
write the result), RUNS times each, alternating, and the medians are compared. py-rattler's
in-process time (gateway query + solve, no interpreter start) is printed too. The two package
sets must agree: a bench of two different answers would measure nothing.
"""

import json
import os
import statistics
import subprocess
import sys
import time

ENVSHIP, PYTHON, WORK, FIXTURES, RUNS = sys.argv[1:6]
RUNS = int(RUNS)
HERE = os.path.dirname(os.path.abspath(__file__))

# lcls-rhel6's virtual packages, as `envship check --json` prints them.
VPKGS = "__glibc=2.12=0;__linux=2.6.32=0;__unix=0=0;__archspec=1=x86_64"


def channel(name, parts):
    """A file:// channel from fixture repodata (bare record maps get the usual wrapper)."""
    root = os.path.join(WORK, "channels", name)
    for rel, subdir in parts:
        with open(os.path.join(FIXTURES, "repodata", rel)) as fh:
            data = json.load(fh)
        if "packages" not in data and "packages.conda" not in data:
            data = {"info": {"subdir": subdir}, "packages": data}
        os.makedirs(os.path.join(root, subdir), exist_ok=True)
        with open(os.path.join(root, subdir, "repodata.json"), "w") as fh:
            json.dump(data, fh)
    for subdir in ("noarch", "linux-64"):
        path = os.path.join(root, subdir, "repodata.json")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                json.dump({"info": {"subdir": subdir}, "packages": {}}, fh)
    return "file://" + root


index4 = channel("index4", [("conda-tests_index4.json", "linux-64")])
CASES = [
    ("index4: python=3.6 numpy", [index4], ["python=3.6", "numpy"]),
    (
        "index4: scientific stack (12 specs)",
        [index4],
        ["python=3.6", "numpy", "scipy", "pandas", "matplotlib", "jupyter", "dask", "bokeh",
         "sqlalchemy", "flask", "requests", "cryptography"],
    ),
]


def envship_lock(name, channels, specs):
    proj = os.path.join(WORK, "projects", name.split(":")[0] + str(len(specs)))
    os.makedirs(proj, exist_ok=True)
    with open(os.path.join(proj, "environment.yml"), "w") as fh:
        fh.write("name: bench\nchannels:\n")
        fh.writelines("  - %s\n" % c for c in channels)
        fh.write("  - nodefaults\ndependencies:\n")
        fh.writelines("  - %s\n" % s for s in specs)
    explicit = os.path.join(proj, "explicit.txt")
    cmd = [ENVSHIP, "--quiet", "lock", "-f", os.path.join(proj, "environment.yml"),
           "--target", "lcls-rhel6", "--offline", "--update",
           "--cache-dir", os.path.join(WORK, "cache-envship"), "--explicit", explicit]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    with open(explicit) as fh:
        files = sorted(line.strip().split("#")[0].rsplit("/", 1)[1]
                       for line in fh if line.startswith(("http", "file")))
    return wall, files, None


def pyrattler(channels, specs):
    cmd = [PYTHON, os.path.join(HERE, "pyrattler_solve.py"), os.path.join(WORK, "cache-pyrattler"),
           ",".join(channels), ";".join(specs), VPKGS]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    result = json.loads(out)
    return wall, result["files"], result["solve_seconds"]


print("bench/solve: %d runs each, medians; machine: %d cores (%s)" % (
    RUNS, os.cpu_count(), os.uname().release))
rows = []
for name, channels, specs in CASES:
    es, pr, pr_inproc = [], [], []
    es_files = pr_files = None
    for _ in range(RUNS):
        wall, es_files, _ = envship_lock(name, channels, specs)
        es.append(wall)
        wall, pr_files, inproc = pyrattler(channels, specs)
        pr.append(wall)
        pr_inproc.append(inproc)
    same = es_files == pr_files
    if not same:
        print("DIFFERENT package sets for %s:" % name)
        print("  only envship:   %s" % sorted(set(es_files) - set(pr_files)))
        print("  only py-rattler: %s" % sorted(set(pr_files) - set(es_files)))
    rows.append((name, len(es_files), statistics.median(es), statistics.median(pr),
                 statistics.median(pr_inproc), same))

print()
print("| request | records | envship lock | py-rattler (process) | py-rattler (in-process) "
      "| ratio (process) | ratio (vs in-process) | same set |")
print("|---|---|---|---|---|---|---|---|")
for name, n, es, pr, inproc, same in rows:
    print("| %s | %d | %.3f s | %.3f s | %.3f s | %.2fx | %.2fx | %s |" % (
        name, n, es, pr, inproc, es / pr, es / inproc, "yes" if same else "NO"))
print()
print("ratio = envship time / py-rattler time (below 1 = envship faster); target <= 1.2x.")
print("'vs in-process' charges envship its process start and lock-file write but not py-rattler's")
print("interpreter start: the stricter comparison.")
sys.exit(0 if all(r[5] for r in rows) else 1)

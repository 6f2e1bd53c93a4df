# envship pack: rewrite .pyc files that hold the build prefix, for the archive only.
# argv: OLD NEW. Reads NUL-separated .pyc paths on stdin, writes N.pyc (N = index) into the
# current directory with the original 16-byte header, prints "N ok" or "N skip REASON" lines.
# With NEW, every str/bytes constant and co_filename has OLD replaced by NEW (what conda-unpack
# does to text). Without NEW (no --dest-prefix) co_filename loses its "OLD/" (importlib sets the
# real path on import anyway), and a file whose constants hold OLD is skipped: its right value
# is only known at the destination, so Python must recompile it from the relocated source.
import importlib.util
import marshal
import os
import sys

old, new = sys.argv[1], sys.argv[2]
enc = lambda s: os.fsencode(s)
oldb, newb = enc(old), enc(new)
CODE = type(compile("", "", "exec"))


class Unfixable(Exception):
    pass


def fix_str(s, filename):
    if old not in s:
        return s
    if new:
        return s.replace(old, new)
    if filename and s.startswith(old + "/"):
        return s[len(old) + 1:]
    raise Unfixable("a constant holds the build prefix and no --dest-prefix was given")


def fix(obj):
    t = type(obj)
    if t is str:
        return fix_str(obj, False)
    if t is bytes:
        if oldb not in obj:
            return obj
        if new:
            return obj.replace(oldb, newb)
        raise Unfixable("a constant holds the build prefix and no --dest-prefix was given")
    if t is tuple:
        return tuple(fix(o) for o in obj)
    if t is frozenset:
        return frozenset(fix(o) for o in obj)
    if t is CODE:
        return obj.replace(co_filename=fix_str(obj.co_filename, True),
                           co_consts=tuple(fix(c) for c in obj.co_consts))
    return obj


out = []
paths = [p for p in sys.stdin.buffer.read().split(b"\0") if p]
for i, path in enumerate(paths):
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:4] != importlib.util.MAGIC_NUMBER:
            raise Unfixable("compiled by another Python version")
        fixed = marshal.dumps(fix(marshal.loads(raw[16:])))
        if oldb in fixed or oldb in raw[:16]:
            raise Unfixable("the build prefix is still in it after rewriting")
        with open("%d.pyc" % i, "wb") as f:
            f.write(raw[:16] + fixed)
        out.append("%d ok" % i)
    except Exception as e:  # one bad file must not stop the others
        reason = " ".join(str(e).split()) or type(e).__name__
        out.append("%d skip %s" % (i, reason))
sys.stdout.write("".join(line + "\n" for line in out))

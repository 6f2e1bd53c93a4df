# envship relocator (python 2.7 and 3.x, standard library only). Embedded in bin/conda-unpack;
# the same rules as envship's Rust relocator and relocate.pl (see relocate.rs): keep in sync.
# Listed paths keep the archive path rule (archive_path.rs): relative, no `..`, no NUL; and no
# file is read or written through a symlink (checked for every path before anything is written).
import os
import re
import sys

LIST = os.path.join(b"share", b"envship", b"relocate.txt")


def fail(msg):
    sys.stderr.write("conda-unpack: " + msg + "\n")
    sys.exit(1)


def show(b):
    if sys.version_info[0] < 3:
        return b
    return b.decode("utf-8", "replace")


def onebyte(i):
    return bytes(bytearray([i]))


def unescape(s):
    return re.sub(b"%([0-9A-Fa-f]{2})", lambda m: onebyte(int(m.group(1), 16)), s)


def escape(b):
    out = []
    for i in bytearray(b):
        if i <= 0x20 or i >= 0x7F or i == 0x25:
            out.append(("%%%02X" % i).encode("ascii"))
        else:
            out.append(onebyte(i))
    return b"".join(out)


def fix_shebang(data):
    if not data.startswith(b"#!"):
        return data
    end = data.find(b"\n")
    if end < 0:
        end = len(data)
    if end <= 127:
        return data
    body = data[2:end]
    m = re.search(b"[ \t\r]", body)
    exe_end = m.start() if m else len(body)
    exe = body[:exe_end]
    name = exe[exe.rfind(b"/") + 1:]
    return b"#!/usr/bin/env " + name + body[exe_end:] + data[end:]


def check_rule(rel, where):
    if rel.startswith(b"/"):
        fail("%s: %s: absolute path" % (where, show(rel)))
    if b"\0" in rel:
        fail("%s: %s: path contains a NUL byte" % (where, show(rel)))
    parts = [p for p in rel.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        fail("%s: %s: path contains `..`" % (where, show(rel)))
    if not parts:
        fail("%s: empty path" % where)
    return b"/".join(parts)


def through_link(root, rel):
    p = root
    for part in rel.split(b"/"):
        p = os.path.join(p, part)
        if os.path.islink(p):
            return True
        if not os.path.lexists(p):
            return False
    return False


def write_new(p, data, mode):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    f = os.fdopen(fd, "wb")
    f.write(data)
    f.close()


def reloc_text(data, old, new, in_bin):
    out = data.replace(old, new) if old != new else data
    if in_bin:
        out = fix_shebang(out)
    return out


def reloc_binary(data, old, new, path):
    out = []
    pos = 0
    n = len(data)
    while True:
        i = data.find(old, pos)
        if i < 0:
            break
        j = data.find(b"\0", i + len(old))
        if j < 0:
            j = n
        seg = data[i:j]
        count = seg.count(old)
        out.append(data[pos:i])
        out.append(seg.replace(old, new))
        k = j
        if j < n:
            out.append(b"\0")
            k = j + 1
        if len(new) < len(old):
            out.append(b"\0" * (count * (len(old) - len(new))))
        elif len(new) > len(old):
            grow = count * (len(new) - len(old))
            if k + grow > n or data[k:k + grow].strip(b"\0"):
                fail("cannot relocate %s: the C string at offset %d has no room for %s"
                     % (show(path), i, show(new)))
            k += grow
        pos = k
    out.append(data[pos:])
    return b"".join(out)


def main():
    new = sys.argv[1]
    if not isinstance(new, bytes):
        new = os.fsencode(new)
    root = new
    listpath = os.path.join(root, LIST)
    if through_link(root, LIST):
        fail("refusing to relocate %s: a symlink is on its way" % show(LIST))
    try:
        f = open(listpath, "rb")
        lines = f.read().split(b"\n")
        f.close()
    except (IOError, OSError) as e:
        fail("cannot read %s: %s" % (show(listpath), e))
    if lines[0] != b"envship-relocate 1" or not lines[1].startswith(b"prefix "):
        fail("%s: not an envship relocation list" % show(listpath))
    old = unescape(lines[1][7:])
    entries = []
    for n, line in enumerate(lines[2:]):
        if not line:
            continue
        parts = line.split(b" ", 2)
        if len(parts) != 3 or parts[0] not in (b"t", b"b"):
            fail("%s, line %d: expected MODE ROOM PATH" % (show(listpath), n + 3))
        where = "%s, line %d" % (show(listpath), n + 3)
        entries.append((parts[0], int(parts[1]), check_rule(unescape(parts[2]), where)))
    for mode, room, rel in entries:
        if through_link(root, rel):
            fail("refusing to relocate %s: a symlink is on its way" % show(rel))
    if old == new:
        sys.stdout.write("conda-unpack: already relocated to %s\n" % show(new))
        return
    for mode, room, rel in entries:
        if mode == b"b" and len(new) > room and len(new) > len(old):
            fail("the destination prefix %s (%d bytes) is longer than the %d bytes available in "
                 "binary file %s" % (show(new), len(new), max(room, len(old)), show(rel)))
    if len(new) > len(old):
        for mode, room, rel in entries:
            if mode == b"b":
                p = os.path.join(root, rel)
                if os.path.exists(p):
                    f = open(p, "rb")
                    reloc_binary(f.read(), old, new, rel)
                    f.close()
    changed = 0
    for mode, room, rel in entries:
        p = os.path.join(root, rel)
        if not os.path.exists(p):
            sys.stderr.write("conda-unpack: warning: %s is missing\n" % show(rel))
            continue
        f = open(p, "rb")
        data = f.read()
        f.close()
        if mode == b"t":
            out = reloc_text(data, old, new, rel.startswith(b"bin/"))
        else:
            out = reloc_binary(data, old, new, rel)
        if out != data:
            fd = os.open(p, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
            f = os.fdopen(fd, "wb")
            f.write(out)
            f.close()
            changed += 1
    text = [b"envship-relocate 1", b"prefix " + escape(new)]
    text.extend(lines[2:])
    tmp = listpath + b".tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    write_new(tmp, b"\n".join(text), os.lstat(listpath).st_mode & 0o7777)
    os.rename(tmp, listpath)
    sys.stdout.write("conda-unpack: relocated %d files from %s to %s\n" % (changed, show(old), show(new)))


main()

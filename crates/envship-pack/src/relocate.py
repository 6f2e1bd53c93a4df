# envship relocator (python 2.7 and 3.x, standard library only). Embedded in bin/conda-unpack;
# the same rules as envship's Rust relocator and relocate.pl (see relocate.rs): keep in sync.
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
        entries.append((parts[0], int(parts[1]), unescape(parts[2])))
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
            f = open(p, "wb")
            f.write(out)
            f.close()
            changed += 1
    text = [b"envship-relocate 1", b"prefix " + escape(new)]
    text.extend(lines[2:])
    tmp = listpath + b".tmp"
    f = open(tmp, "wb")
    f.write(b"\n".join(text))
    f.close()
    os.rename(tmp, listpath)
    sys.stdout.write("conda-unpack: relocated %d files from %s to %s\n" % (changed, show(old), show(new)))


main()

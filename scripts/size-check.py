#!/usr/bin/env python3
"""Lists non-test Rust files over 700 lines and non-test functions over 150 lines under crates/*/src
(issue 13's size rule). Test modules (`#[cfg(test)] mod ... {}`) are left out of both counts.
Exits 1 when something is over."""
import re, sys, pathlib

MAX_FILE, MAX_FN = 700, 150
root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
over = []
literal_re = re.compile(r"b?'(\\.|[^'\\])'|b?\"(\\.|[^\"\\])*\"")


def braces(line):
    """Net `{` minus `}` of a line, ignoring those inside string and char literals and comments."""
    code = literal_re.sub('""', line.split("//")[0] if '"' not in line else line)
    code = code.split("//")[0]
    return code.count("{") - code.count("}"), "{" in code


fn_re = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+"[^"]*"\s+)?fn\s+(\w+)')

def strip_tests(lines):
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r'\s*(pub\s+)?mod\s+\w+\s*\{', lines[i + 1]):
            depth, j = 0, i + 1
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                if depth == 0 and "{" in "".join(lines[i + 1:j + 1]):
                    break
                j += 1
            i = j + 1
            continue
        out.append(lines[i]); i += 1
    return out

for path in sorted(root.glob("crates/*/src/**/*.rs")):
    lines = strip_tests(path.read_text().splitlines())
    if len(lines) > MAX_FILE:
        over.append(f"{path}: {len(lines)} lines (non-test)")
    i = 0
    while i < len(lines):
        m = fn_re.match(lines[i])
        if m and not lines[i].rstrip().endswith(";"):
            depth, j, opened = 0, i, False
            while j < len(lines):
                net, has_open = braces(lines[j])
                depth += net
                opened = opened or has_open
                if opened and depth <= 0:
                    break
                j += 1
            n = j - i + 1
            if n > MAX_FN:
                over.append(f"{path}:{i+1}: fn {m.group(7)} is {n} lines")
        i += 1
print("\n".join(over) if over else "all files <= 700 lines and functions <= 150 lines")
sys.exit(1 if over else 0)

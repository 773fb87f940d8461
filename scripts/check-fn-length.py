#!/usr/bin/env python3
"""No product function over MAX_LINES lines in the process crates and hedgectl (issue 19).

    scripts/check-fn-length.py [--max N] [--list] [CRATE_DIR ...]

Scans the non-test Rust source of the given crate directories (default: feed-handler, engine,
order-gateway, hedgectl): every `.rs` file under `<crate>/src`, minus `#[cfg(test)]` items and `#[test]`
functions. A function's length is its lines from the `fn` keyword's line to its closing brace,
inclusive (doc comments and attributes above it do not count; blank lines and comments inside
do). Nested functions and closures count towards their enclosing function too, and are also
measured on their own.

Exit 0 when no function is longer than --max (default 80) apart from the ALLOWED ones below,
1 otherwise, printing one line per offender: `path:line: fn name is N lines (max M)`. An ALLOWED
function that has come under the limit is reported as stale (exit 1) so that the list only
shrinks. --list prints every function over the limit, allowed or not, and exits 0.

Run by `scripts/test.sh` before the cargo tests, so CI (`.ci/run`) runs it too.
"""

import argparse
import os
import re
import sys

MAX_LINES = 80
DEFAULT_CRATES = ["feed-handler", "engine", "order-gateway", "hedgectl"]

# Known offenders, each with the reason it is not split here (none left). Only ever remove
# entries.
ALLOWED: set = set()

FN_RE = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def strip_code(text):
    """The text with comments, string and char literals blanked to spaces (newlines kept), so
    that braces and `fn` are only found in code."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 260]) and not ident_char(text, i - 1):
            m = re.match(r'r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(blank(text[i:j]))
            i = j
        elif c == "b" and nxt == '"' and not ident_char(text, i - 1):
            out.append(" ")
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i:j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}', '{') or a lifetime ('a): only the former
            # is blanked.
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:i + 12])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def ident_char(text, i):
    return i >= 0 and (text[i].isalnum() or text[i] == "_")


def blank(s):
    return "".join("\n" if ch == "\n" else " " for ch in s)


def matching_brace(code, open_at):
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


def test_ranges(code):
    """Character ranges of `#[cfg(test)]` items and `#[test]` functions."""
    ranges = []
    for m in re.finditer(r"#\[\s*(cfg\s*\(\s*test\s*\)|test)\s*\]", code):
        j = code.find("{", m.end())
        semi = code.find(";", m.end())
        if j < 0 or (0 <= semi < j):
            continue  # `#[cfg(test)] use ...;` and the like
        ranges.append((m.start(), matching_brace(code, j)))
    return ranges


def functions(path):
    """(name, first line, line count) of each non-test function with a body in `path`."""
    with open(path, encoding="utf-8") as f:
        code = strip_code(f.read())
    skip = test_ranges(code)
    for m in FN_RE.finditer(code):
        if any(a <= m.start() <= b for a, b in skip):
            continue
        # The body opens at the first `{` after the signature, unless a `;` comes first
        # (a trait method's declaration).
        j = m.end()
        while j < len(code) and code[j] not in "{;":
            j += 1
        if j >= len(code) or code[j] == ";":
            continue
        end = matching_brace(code, j)
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, end) + 1
        yield m.group(1), first, last - first + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max", type=int, default=MAX_LINES)
    ap.add_argument("--list", action="store_true", help="list every long function, exit 0")
    ap.add_argument("crates", nargs="*", default=DEFAULT_CRATES)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    long_fns = []
    for crate in args.crates:
        for dirpath, _, files in os.walk(os.path.join(root, crate, "src")):
            for name in sorted(files):
                if not name.endswith(".rs") or name == "tests.rs":
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                for fn, line, count in functions(path):
                    if count > args.max:
                        long_fns.append((rel, line, fn, count))
    long_fns.sort()
    if args.list:
        for rel, line, fn, count in long_fns:
            print(f"{rel}:{line}: fn {fn} is {count} lines")
        return 0
    bad = 0
    seen = set()
    for rel, line, fn, count in long_fns:
        seen.add((rel, fn))
        if (rel, fn) in ALLOWED:
            print(f"{rel}:{line}: fn {fn} is {count} lines (allowed for now: being split elsewhere)")
            continue
        print(f"{rel}:{line}: fn {fn} is {count} lines (max {args.max})")
        bad += 1
    for rel, fn in sorted(ALLOWED - seen):
        if any(rel.startswith(c.rstrip("/") + "/") for c in args.crates):
            print(f"{rel}: fn {fn} is no longer over {args.max} lines: remove it from ALLOWED in {__file__}")
            bad += 1
    if bad:
        print(f"check-fn-length: {bad} problem(s); split the function(s) into named steps", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

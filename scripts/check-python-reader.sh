#!/usr/bin/env bash
# Checks scripts/shm_reader.py against segments written by the Rust code: the example
# `write_known_segments` writes one segment of every kind with known contents into a temporary
# directory and prints the expected dump as JSON; the Python reader dumps the directory; every
# value the Rust side expects must be in the Python dump, equal. Exits non-zero on mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp="$(mktemp -d /dev/shm/shm-reader-check.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

cargo run --quiet -p shm-layout --example write_known_segments -- "$tmp/ns" >"$tmp/expected.json"
python3 scripts/shm_reader.py "$tmp/ns" >"$tmp/actual.json"

python3 - "$tmp/expected.json" "$tmp/actual.json" <<'PY'
import json
import sys

expected = json.load(open(sys.argv[1]))
actual = json.load(open(sys.argv[2]))
errors = []


def check(exp, act, path):
    if isinstance(exp, dict):
        if not isinstance(act, dict):
            errors.append(f"{path}: expected an object, got {act!r}")
            return
        for k, v in exp.items():
            if k not in act:
                errors.append(f"{path}.{k}: missing")
            else:
                check(v, act[k], f"{path}.{k}")
    elif isinstance(exp, list):
        if not isinstance(act, list) or len(act) != len(exp):
            errors.append(f"{path}: expected {len(exp)} items, got {act!r}")
            return
        for i, (e, a) in enumerate(zip(exp, act)):
            check(e, a, f"{path}[{i}]")
    elif exp != act:
        errors.append(f"{path}: expected {exp!r}, got {act!r}")


check(expected, actual, "$")
if set(actual) != set(expected):
    errors.append(f"segments: expected {sorted(expected)}, got {sorted(actual)}")
for e in errors:
    print("MISMATCH", e, file=sys.stderr)
if errors:
    sys.exit(1)
n = sum(len(v.get("messages", v.get("entries", v.get("defs", v.get("counters", []))))) for v in expected.values())
print(f"python reader OK: {len(expected)} segments, {n} messages/entries match the Rust writer")
PY

#!/usr/bin/env bash
# Regenerate pricing/tests/data/quantlib_reference.csv with QuantLib's Python package.
# Creates a virtual environment in scripts/.venv (gitignored) on first use.
# Usage: scripts/gen-quantlib-reference.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet 'QuantLib>=1.30'
fi
"$venv/bin/python" "$here/quantlib_reference.py" > "$repo/pricing/tests/data/quantlib_reference.csv.tmp"
mv "$repo/pricing/tests/data/quantlib_reference.csv.tmp" "$repo/pricing/tests/data/quantlib_reference.csv"
echo "wrote $(($(wc -l < "$repo/pricing/tests/data/quantlib_reference.csv") - 1)) cases to pricing/tests/data/quantlib_reference.csv" >&2

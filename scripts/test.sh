#!/usr/bin/env bash
# The README's test command, and what CI (.ci/run) runs: on a fresh machine with only the Rust
# toolchain and the OS package manager, it installs or finds what the tests need, then runs the
# whole suite.
#
#   scripts/test.sh [ARGS...]       # ARGS go to `cargo test`, e.g. `-- --nocapture`
#
# What it sets up first (each script is idempotent and installs only what is missing):
#   scripts/setup-quickfix.sh   QuickFIX test exchange for the FIX tests (apt-get; root or sudo)
#   scripts/setup-nats.sh       nats-server, when that script exists
# A missing tool it cannot install is one line naming what to do, never a panic deep in a test.
# HEDGE_SKIP_QUICKFIX=1 skips the QuickFIX setup and only the FIX tests that need it; each of
# them says SKIPPED.
#
# Before the suite: scripts/check-fn-length.py (no product function over 80 lines in
# feed-handler, engine, order-gateway and hedgectl; python3).
#
# The suite runs with --no-fail-fast: a failing test binary never stops the ones after it, and
# cargo lists every failing binary at the end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

fail() {
    echo "test.sh: $*" >&2
    exit 1
}

command -v cargo >/dev/null 2>&1 ||
    fail "cargo not found: install the Rust toolchain (https://rustup.rs, 1.89 or later)"

if [ "${HEDGE_SKIP_QUICKFIX:-}" = 1 ]; then
    echo "test.sh: HEDGE_SKIP_QUICKFIX=1: QuickFIX not set up; the FIX tests will say SKIPPED" >&2
else
    bash scripts/setup-quickfix.sh ||
        fail "scripts/setup-quickfix.sh failed (see above); fix that and rerun scripts/test.sh, or set HEDGE_SKIP_QUICKFIX=1 to skip only the FIX tests"
fi

if [ -f scripts/setup-nats.sh ]; then
    bash scripts/setup-nats.sh ||
        fail "scripts/setup-nats.sh failed (see above); fix that and rerun scripts/test.sh"
fi

[ -d ../shared/data ] ||
    echo "test.sh: warning: ../shared/data (real market data beside the checkout) is missing; the tests that read it will fail" >&2

# No product function over 80 lines in the process crates (issue 19). A failure here is reported
# after the tests, which run regardless.
command -v python3 >/dev/null 2>&1 ||
    fail "python3 not found: install it with the OS package manager (apt-get install python3); scripts/check-fn-length.py needs it"
fn_length=0
python3 scripts/check-fn-length.py || fn_length=$?

status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
if [ "$fn_length" -ne 0 ]; then
    echo "test.sh: scripts/check-fn-length.py failed (see above): split the functions it names" >&2
    [ "$status" -ne 0 ] || status=$fn_length
fi
exit "$status"

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

exec cargo test --workspace --no-fail-fast "$@"

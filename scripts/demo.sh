#!/usr/bin/env bash
# The one-command demo: builds the release binaries, then runs the whole system (feed handler on
# a deterministic synthetic market, hedger, order gateway with a simulated venue and client
# option flow) as three processes over shared memory for about 30 s, printing a status line each
# second and a summary at the end. Ctrl-C stops it early; it always cleans up its processes and
# segments.
#
#   ./scripts/demo.sh                      # ~30 s
#   ./scripts/demo.sh --duration 120       # longer (0: until Ctrl-C)
#   ./scripts/demo.sh --help               # every option of `hedgectl demo`
#
# Artifacts (summary, HdrHistogram logs, latency.svg, process logs) go to target/demo/<namespace>/.
set -euo pipefail

cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
    echo "demo.sh: cargo not found; install the Rust toolchain (rustup) and retry" >&2
    exit 1
fi
target_dir="${CARGO_TARGET_DIR:-target}"
# HEDGE_DEMO_PROFILE=dev reuses the binaries `cargo test --workspace` builds (opt-level 2, no
# fat LTO); CI uses it to run this very script without a second, slow release build.
profile="${HEDGE_DEMO_PROFILE:-release}"
case "$profile" in
    dev) profile_dir=debug ;;
    *) profile_dir="$profile" ;;
esac
echo "demo.sh: building $profile binaries (the first release build takes a few minutes)" >&2
# Only the four binaries the demo runs (the bench package's binaries are not needed).
cargo build --profile "$profile" --bins -p feed-handler -p engine -p order-gateway -p hedgectl
exec "$target_dir/$profile_dir/hedgectl" demo "$@"

#!/usr/bin/env bash
# End-to-end tick-to-order benchmark (issue 10): builds the release binaries, then runs the
# feed handler, the hedger and the order gateway as three pinned processes on shared memory at
# each offered rate (default 10k, 100k, 1M events/s and saturation), a fixed number of events
# each, with a book of 10,000 options; in the same run the raw core-to-core ping-pong (the
# hardware's limit) and the naive pipeline (threads + crossbeam channels + full delta
# recomputation per tick). Prints percentile tables and ratios; writes summary.json, .hgrm
# files and percentiles.svg. Results are recorded in docs/benchmarks.md, section
# "End-to-end tick-to-order".
#
#   scripts/bench.sh                         # about 2 minutes on a 2-core VM
#   scripts/bench.sh --quick                 # about 20-30 s
#   scripts/bench.sh --cores 2,4,6 --idle busy-spin,busy-spin,busy-spin   # a tuned host
#   scripts/bench.sh --rates 1000000 --events 10000000 --out /tmp/e2e
#   scripts/bench.sh --help                  # every option
#
# Cores default to 1,2,3 (busy-spin) with 4 or more cores, else 0,1,0 (spin-then-yield).
set -euo pipefail

cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
echo "bench.sh: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "bench.sh: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench.sh: building release binaries (feed-handler, hedger, order-gateway, e2e)" >&2
cargo build --release --quiet -p feed-handler -p engine -p order-gateway --bins
cargo build --release --quiet -p bench --bin e2e
exec "$target_dir/release/e2e" --bin-dir "$target_dir/release" --out "$target_dir/e2e-bench" "$@"

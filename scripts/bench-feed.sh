#!/usr/bin/env bash
# Feed handler throughput: synthetic publish rate (events/s) and Tardis CSV parse-and-publish
# rate (rows/s) on the real files in ../shared/data, each beside a baseline measured in the same
# run. Results are recorded in docs/benchmarks.md, section "Feed handler".
#
# Usage: scripts/bench-feed.sh [--events N] [--repeat N] [--runs N]
#   --events  synthetic events per run (default 20000000)
#   --repeat  copies of the options_chain file, timestamps shifted (default 2000)
#   --runs    runs per figure, the fastest is kept (default 3)
#   --wall    rates per wall second instead of per on-CPU second of the benchmark thread
# Pin it for steadier numbers: taskset -c 1 scripts/bench-feed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc --all) cores, running on $(nproc) of them ($(taskset -pc $$ 2>/dev/null | sed "s/.*: //" || echo all)), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
exec cargo run --quiet --release -p feed-handler --example feed_bench -- "$@"

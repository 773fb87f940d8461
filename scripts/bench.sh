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
#   scripts/bench.sh --against HEAD~1 [--rounds 3] --rates 100000,max ...
#                                            # REV's binaries too, alternated, and the ratios
#
# Cores default to 1,2,3 (busy-spin) with 4 or more cores, else 0,1,0 (spin-then-yield).
#
# --against REV (issue 22, item 4: against the previous commit's numbers, in the same run):
# builds REV's feed-handler, hedger and order-gateway from its tree (`git archive`, in
# $target_dir/bench-base/REV; a full release build the first time), then runs this tree's e2e
# --rounds times (default 3) over REV's binaries and this tree's, alternated, with the other
# options as given (not --out: the runs go to $target_dir/e2e-against-REV), and prints each
# run's ring one-way, feed -> hedger p50 and its ratio to the ring, CPU per event at
# saturation, and the medians' ratio (this tree over REV). REV's three binaries run together,
# so they agree with each other; the e2e harness is this tree's, so REV's binaries must accept
# the command lines and config files it writes (recent commits do; an older one stops with
# its error in the run's .txt). Needs python3.
set -euo pipefail

cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
echo "bench.sh: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "bench.sh: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench.sh: building release binaries (feed-handler, hedger, order-gateway, e2e)" >&2
cargo build --release --quiet -p feed-handler -p engine -p order-gateway --bins
cargo build --release --quiet -p bench --bin e2e

against=""
rounds=3
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --against) against="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ -z "$against" ]; then
    exec "$target_dir/release/e2e" --bin-dir "$target_dir/release" --out "$target_dir/e2e-bench" "${args[@]}"
fi

rev="$(git rev-parse --short "$against^{commit}")" || { echo "bench.sh: --against $against: not a commit" >&2; exit 2; }
command -v python3 >/dev/null || { echo "bench.sh: --against needs python3 for its summary" >&2; exit 1; }
base_dir="$target_dir/bench-base/$rev"
# shellcheck source=scripts/rev-build.sh
. scripts/rev-build.sh
echo "bench.sh: building $rev's feed-handler, hedger and order-gateway in $base_dir" >&2
build_rev "$rev" "$base_dir" -p feed-handler -p engine -p order-gateway --bins || {
    echo "bench.sh: $rev's binaries do not build" >&2
    exit 1
}
out="$target_dir/e2e-against-$rev"
rm -rf "$out" && mkdir -p "$out"
dirs=()
for i in $(seq 1 "$rounds"); do
    for tag in base head; do
        bins="$target_dir/release"; [ "$tag" = base ] && bins="$base_dir/target/release"
        echo "bench.sh: round $i of $rounds, $tag ($bins)" >&2
        "$target_dir/release/e2e" --bin-dir "$bins" --out "$out/$tag-$i" "${args[@]}" >"$out/$tag-$i.txt" 2>&1 || {
            echo "bench.sh: the e2e run failed, see $out/$tag-$i.txt" >&2
            exit 1
        }
        dirs+=("$out/$tag-$i")
    done
done
head_label="$(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo '+changes')"
echo
echo "e2e, this tree ($head_label) against $rev, $rounds alternated runs each, $(nproc) cores, load now $(cut -d' ' -f1-3 /proc/loadavg); each run's output in $out"
python3 scripts/e2e_compare.py "$rev" "$head_label" "${dirs[@]}"

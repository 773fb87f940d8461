#!/usr/bin/env bash
# Per-event-kind cost of the hedger core (issue 22, item 1): builds `hot_path` (bench crate),
# runs it once for wall-clock figures (every step timed into an HdrHistogram per kind) and
# once under callgrind for instructions per event kind (repeatable on a shared, loaded machine:
# callgrind counts instructions, not time). Results go to docs/benchmarks.md, section
# "Hedger hot path per event kind".
#
#   scripts/bench-hot.sh                     # 1M events timed, 50k under callgrind
#   scripts/bench-hot.sh --events 200000 --cg-events 20000
#   scripts/bench-hot.sh --no-callgrind
#   scripts/bench-hot.sh --cg-events 20000 -- --lap-lost 262144 [--full-rebuild]
#                                            # after --: passed to hot_path (both runs)
set -euo pipefail

cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
events=1000000
cg_events=50000
callgrind=1
while [ $# -gt 0 ]; do
    case "$1" in
        --events) events="$2"; shift 2 ;;
        --cg-events) cg_events="$2"; shift 2 ;;
        --no-callgrind) callgrind=0; shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "bench-hot.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

echo "bench-hot.sh: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "bench-hot.sh: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release --quiet -p bench --bin hot_path
bin="$target_dir/release/hot_path"

echo "## wall clock: $bin --events $events $*"
"$bin" --events "$events" "$@"
echo "bench-hot.sh: load after the timed run $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$callgrind" = 1 ]; then
    command -v valgrind >/dev/null || { echo "bench-hot.sh: valgrind not installed (apt-get install valgrind), or pass --no-callgrind" >&2; exit 1; }
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' EXIT
    echo "## instructions: valgrind --tool=callgrind --toggle-collect='*step_*' $bin --events $cg_events --no-clock $*"
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" --toggle-collect='*step_*' \
        "$bin" --events "$cg_events" --no-clock "$@" >"$out/counts" 2>"$out/valgrind.log"
    grep '^laps' "$out/counts" || true
    callgrind_annotate --inclusive=yes --threshold=100 "$out/cg" >"$out/annotate"
    echo "| kind | events | instructions per event |"
    echo "|---|---:|---:|"
    for kind in index forward quote mark trade fill timer rebuild; do
        n="$(awk -v k="$kind" '$1 == "count" && $2 == k { print $3 }' "$out/counts")"
        ir="$(grep -E "hot_path::step_${kind}( |\$)" "$out/annotate" | head -1 | awk '{ gsub(",", "", $1); print $1 }')"
        awk -v k="$kind" -v n="${n:-0}" -v ir="${ir:-0}" \
            'BEGIN { printf "| %s | %d | %s |\n", k, n, (n > 0 ? sprintf("%.0f", ir / n) : "-") }'
    done
fi

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
#   scripts/bench-hot.sh --cg-events 20000 -- --cost-aware
#                                            # the cost-aware rule instead of the fixed band
#                                            # (--against REV only where REV's hot_path has the flag too)
#   scripts/bench-hot.sh --against HEAD~1    # the same for REV too, and the ratios (item 4)
#
# --against REV builds REV's `hot_path` (its tree from `git archive`, in
# $target_dir/bench-hot-base/REV: a full release build the first time, several minutes on two
# cores), then measures both binaries in this run: instructions per event kind under callgrind
# (exact; the ratio is the figure to compare), and wall-clock p50 per kind from --rounds
# alternated runs of each (default 3; the median of each binary's p50s; noisy on a shared
# machine). The ratio column is this tree over REV: below 1 is cheaper now.
set -euo pipefail

cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
events=1000000
cg_events=50000
callgrind=1
against=""
rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --events) events="$2"; shift 2 ;;
        --cg-events) cg_events="$2"; shift 2 ;;
        --no-callgrind) callgrind=0; shift ;;
        --against) against="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "bench-hot.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
kinds="index forward quote mark trade fill timer rebuild"

echo "bench-hot.sh: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "bench-hot.sh: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release --quiet -p bench --bin hot_path
bin="$target_dir/release/hot_path"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# Instructions per event of each kind: "kind events instructions" lines into $2.
cg_counts() {
    local b="$1" dest="$2" tag="$3"
    command -v valgrind >/dev/null || { echo "bench-hot.sh: valgrind not installed (apt-get install valgrind), or pass --no-callgrind" >&2; exit 1; }
    echo "## instructions ($tag): valgrind --tool=callgrind --toggle-collect='*step_*' $b --events $cg_events --no-clock ${*:4}" >&2
    valgrind --tool=callgrind --callgrind-out-file="$out/cg-$tag" --toggle-collect='*step_*' \
        "$b" --events "$cg_events" --no-clock "${@:4}" >"$out/counts-$tag" 2>"$out/valgrind-$tag.log"
    grep '^laps' "$out/counts-$tag" >&2 || true
    callgrind_annotate --inclusive=yes --threshold=100 "$out/cg-$tag" >"$out/annotate-$tag"
    : >"$dest"
    for kind in $kinds; do
        n="$(awk -v k="$kind" '$1 == "count" && $2 == k { print $3 }' "$out/counts-$tag")"
        # A kind with no step in the run (no lap in a short one) has no line: 0.
        ir="$(awk -v f="hot_path::step_${kind} " 'index($0, f) { gsub(",", "", $1); print $1; exit }' "$out/annotate-$tag")"
        echo "$kind ${n:-0} ${ir:-0}" >>"$dest"
    done
}

if [ -z "$against" ]; then
    echo "## wall clock: $bin --events $events $*"
    "$bin" --events "$events" "$@"
    echo "bench-hot.sh: load after the timed run $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ "$callgrind" = 1 ]; then
        cg_counts "$bin" "$out/ir" head "$@"
        echo "| kind | events | instructions per event |"
        echo "|---|---:|---:|"
        awk '{ printf "| %s | %d | %s |\n", $1, $2, ($2 > 0 ? sprintf("%.0f", $3 / $2) : "-") }' "$out/ir"
    fi
    exit 0
fi

# --against REV: REV's hot_path, built from its own tree.
rev="$(git rev-parse --short "$against^{commit}")" || { echo "bench-hot.sh: --against $against: not a commit" >&2; exit 2; }
base_dir="$target_dir/bench-hot-base/$rev"
# shellcheck source=scripts/rev-build.sh
. scripts/rev-build.sh
echo "bench-hot.sh: building $rev's hot_path in $base_dir (the first time: a full release build)" >&2
build_rev "$rev" "$base_dir" -p bench --bin hot_path || {
    echo "bench-hot.sh: $rev's hot_path does not build (does $rev have bench/src/bin/hot_path.rs?)" >&2
    exit 1
}
base_bin="$base_dir/target/release/hot_path"

# Wall clock: alternated, each binary's p50 per kind per round.
for i in $(seq 1 "$rounds"); do
    for tag in base head; do
        b="$bin"; [ "$tag" = base ] && b="$base_bin"
        echo "## wall clock, round $i, $tag: $b --events $events $*" >&2
        "$b" --events "$events" "$@" >"$out/wall-$tag-$i"
        # | kind | count | orders | mean | p50 | ...
        awk -F'|' -v r="$i" '{ k = $2; gsub(/ /, "", k); p = $6; gsub(/ /, "", p); if (k != "" && p ~ /^[0-9]+$/) print k, r, p }' \
            "$out/wall-$tag-$i" >>"$out/p50-$tag"
    done
done
echo "bench-hot.sh: load after the timed runs $(cut -d' ' -f1-3 /proc/loadavg)"
median_p50() { # kind file
    awk -v k="$1" '$1 == k { print $3 }' "$2" | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'
}

if [ "$callgrind" = 1 ]; then
    cg_counts "$base_bin" "$out/ir-base" base "$@"
    cg_counts "$bin" "$out/ir-head" head "$@"
fi

echo
echo "This tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo ' + changes')) against $rev, in the same run:"
if [ "$callgrind" = 1 ]; then
    echo "| kind | events | instructions, $rev | instructions, this tree | ratio | wall p50 ns, $rev | wall p50 ns, this tree | ratio |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
else
    echo "| kind | wall p50 ns, $rev | wall p50 ns, this tree | ratio |"
    echo "|---|---:|---:|---:|"
fi
for kind in $kinds; do
    wb="$(median_p50 "$kind" "$out/p50-base")"
    wh="$(median_p50 "$kind" "$out/p50-head")"
    if [ "$callgrind" = 1 ]; then
        read -r _ nb ib < <(grep "^$kind " "$out/ir-base")
        read -r _ nh ih < <(grep "^$kind " "$out/ir-head")
        awk -v k="$kind" -v nb="$nb" -v ib="$ib" -v nh="$nh" -v ih="$ih" -v wb="$wb" -v wh="$wh" 'BEGIN {
            pb = (nb > 0 ? ib / nb : 0); ph = (nh > 0 ? ih / nh : 0)
            printf "| %s | %d | %s | %s | %s | %s | %s | %s |\n", k, nh,
                (nb > 0 ? sprintf("%.0f", pb) : "-"), (nh > 0 ? sprintf("%.0f", ph) : "-"),
                (pb > 0 && nh > 0 ? sprintf("%.3f", ph / pb) : "-"),
                wb, wh, (wb + 0 > 0 && wh != "-" ? sprintf("%.2f", wh / wb) : "-") }'
    else
        awk -v k="$kind" -v wb="$wb" -v wh="$wh" 'BEGIN {
            printf "| %s | %s | %s | %s |\n", k, wb, wh, (wb + 0 > 0 && wh != "-" ? sprintf("%.2f", wh / wb) : "-") }'
    fi
done

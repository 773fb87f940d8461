# shellcheck shell=bash
# Sourced by scripts/bench.sh and scripts/bench-hot.sh for their --against REV.
#
# build_rev REV DIR CARGO_BUILD_ARGS...: extracts REV's tree into DIR/src (`git archive`) and
# builds it there, `cargo build --release --quiet CARGO_BUILD_ARGS...`, into DIR/target. One
# tree and one target directory per revision: the archive gives files the commit's time,
# older than another revision's build outputs, so a shared target directory would take that
# build as fresh and run the wrong binaries.
build_rev() {
    local rev="$1" dir="$2"
    shift 2
    # One chain: called as `build_rev ... || handle`, where `set -e` does not stop at a step.
    rm -rf "$dir/src" && mkdir -p "$dir/src" &&
        git archive "$rev" | tar -x -C "$dir/src" &&
        (cd "$dir/src" && CARGO_TARGET_DIR="$(cd .. && pwd)/target" cargo build --release --quiet "$@")
}

#!/usr/bin/env bash
# Shared-memory ring benchmark: our SPSC queue and broadcast ring beside a raw one-cache-line
# ping-pong, rtrb, crossbeam's ArrayQueue and iceoryx2, between two pinned threads and between
# two pinned processes. Prints a table and writes JSON (default $CARGO_TARGET_DIR or target,
# file ring_bench.json).
#
# Usage: scripts/bench-rings.sh [--quick] [--no-iceoryx2] [extra ring_bench args...]
#   --quick        short run (fewer iterations), for smoke tests
#   --no-iceoryx2  do not build the iceoryx2 peer (it needs libclang and a long build)
# Environment: CORES="A,B" (default "0,1"), JSON=path.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
iceoryx2=1
extra=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --no-iceoryx2) iceoryx2=0 ;;
    *) extra+=("$arg") ;;
  esac
done

features=()
if [[ $iceoryx2 == 1 ]]; then
  # iceoryx2-pal-posix generates its POSIX bindings with bindgen, which needs libclang.
  if ! ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so'; then
    if command -v apt-get >/dev/null 2>&1 && ! dpkg -s libclang-dev >/dev/null 2>&1; then
      echo "bench-rings: installing libclang-dev (needed to build iceoryx2)" >&2
      sudo_cmd=()
      [[ $(id -u) != 0 ]] && sudo_cmd=(sudo)
      "${sudo_cmd[@]}" apt-get update -qq
      DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq libclang-dev
    fi
  fi
  features=(--features iceoryx2-peer)
fi

cores="${CORES:-0,1}"
json="${JSON:-${CARGO_TARGET_DIR:-target}/ring_bench.json}"
args=(--cores "$cores" --json "$json")
if [[ $quick == 1 ]]; then
  args+=(--iters 50000 --warmup 5000 --tput-msgs 2000000)
fi

cargo build --release -p bench --bin ring_bench "${features[@]}"
bin="${CARGO_TARGET_DIR:-target}/release/ring_bench"
echo "command: $bin ${args[*]} ${extra[*]:-}"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|L1d|L2|L3|NUMA node\(s\)|Hypervisor)' || true
"$bin" "${args[@]}" "${extra[@]}"

#!/usr/bin/env bash
# Installs QuickFIX (Debian's libquickfix-dev, a prebuilt C++ library: seconds, no compile of
# QuickFIX itself) and builds the test exchange scripts/fix/fix_acceptor.cpp against it into
#   ${HEDGE_QUICKFIX_DIR:-<repo>/target/quickfix}/bin/fix_acceptor
# Idempotent: installs only what is missing, rebuilds only when the source is newer.
#
# Why not the `quickfix` Python package: PyPI has no wheel for it, so pip compiles all of
# QuickFIX plus a huge SWIG wrapper (many minutes on 2 cores); Debian bookworm has no
# python3-quickfix. The C++ library from Debian installs in about 2 s and the acceptor builds
# in about 5 s.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${HEDGE_QUICKFIX_DIR:-$root/target/quickfix}"
src="$root/scripts/fix/fix_acceptor.cpp"
bin="$out/bin/fix_acceptor"

missing=()
# pkg-config rather than dpkg: a QuickFIX built from source (or another distro's) counts too.
pkg-config --exists quickfix 2>/dev/null || missing+=(libquickfix-dev)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ((${#missing[@]} > 0)); then
    # One clear line, not a confusing failure, when this host cannot install them.
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup-quickfix: ${missing[*]} missing and apt-get not found: install QuickFIX (C++ library with pkg-config 'quickfix'), g++ and pkg-config yourself, or set HEDGE_SKIP_QUICKFIX=1" >&2
        exit 1
    fi
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "setup-quickfix: ${missing[*]} missing and not root without sudo: run 'apt-get install ${missing[*]}' as root, or set HEDGE_SKIP_QUICKFIX=1" >&2
            exit 1
        }
        sudo=(sudo)
    fi
    echo "setup-quickfix: installing ${missing[*]} from Debian" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
    mkdir -p "$out/bin"
    echo "setup-quickfix: building $bin" >&2
    # QuickFIX 1.15 headers use dynamic exception specifications: C++14 at most.
    # shellcheck disable=SC2046 # pkg-config output is a list of flags
    g++ -std=gnu++14 -O1 -w -o "$bin.tmp" "$src" $(pkg-config --cflags --libs quickfix) -lpthread
    mv "$bin.tmp" "$bin"
fi
echo "setup-quickfix: ready: $bin (spec $root/scripts/fix/FIX44.xml)"

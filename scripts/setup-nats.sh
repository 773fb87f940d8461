#!/usr/bin/env bash
# Installs nats-server (Debian's package, the 2.9 series) if it is missing and, when asked,
# starts a local server with JetStream, listening on 127.0.0.1 only.
#
#   scripts/setup-nats.sh                          # install only (what CI and scripts/test.sh call)
#   scripts/setup-nats.sh --start [--port 4222] [--store DIR]
#                                                  # install, then run a server in the foreground
#
# The store directory (default: target/nats/<port>) is created 0700. The risk-bridge tests do
# not use --start: each starts its own server on a free port with its own temporary store.
# Installing needs root or sudo.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
start=0
port=4222
store=""
while (($# > 0)); do
    case "$1" in
        --start) start=1 ;;
        --port) port="$2"; shift ;;
        --store) store="$2"; shift ;;
        -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "setup-nats: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

find_server() {
    command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; } || true
}

server="$(find_server)"
if [ -z "$server" ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    echo "setup-nats: installing nats-server from Debian" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        nats-server >/dev/null
    server="$(find_server)"
fi
[ -n "$server" ] || { echo "setup-nats: nats-server is still missing after the install" >&2; exit 1; }
version="$("$server" --version)"
case "$version" in
    *v2.9.* | *v2.1[0-9].*) ;;
    *) echo "setup-nats: warning: $version; the bridge is written for the 2.9 series" >&2 ;;
esac
echo "setup-nats: $version at $server" >&2

if ((start)); then
    store="${store:-$root/target/nats/$port}"
    (umask 077 && mkdir -p "$store")
    chmod 0700 "$store"
    echo "setup-nats: JetStream on nats://127.0.0.1:$port, store $store" >&2
    exec "$server" --addr 127.0.0.1 --port "$port" --jetstream --store_dir "$store"
fi

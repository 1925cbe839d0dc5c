#!/usr/bin/env bash
# Builds and runs the push-core daemon with its default configuration:
# socket.io on http://127.0.0.1:3000, publishes on the default socket, which
# `push-core send`, `stats`, `online` and `position` find by themselves:
# /run/push-core/push.sock as root, $XDG_RUNTIME_DIR/push-core/push.sock for
# other users (docs/configuration.md). Extra arguments go to
# `push-core serve` (see `--help`). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p push-core
socket=$(target/release/push-core check-config "$@" 2> /dev/null | sed -n 's/^socket = "\(.*\)"$/\1/p') || true
[[ -n $socket ]] && echo "publishing socket: $socket"
exec target/release/push-core serve "$@"

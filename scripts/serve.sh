#!/usr/bin/env bash
# Builds and runs the push-core daemon with its default configuration:
# socket.io on http://127.0.0.1:3000, publishes on /run/push-core/push.sock.
# Extra arguments go to `push-core serve` (see `--help`). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p push-core
args=()
if [[ $(id -u) -ne 0 && ! -w /run/push-core && -z ${PUSH_CORE_SOCKET:-} ]]; then
  # /run is root's; an unprivileged developer gets a socket of their own.
  socket="${XDG_RUNTIME_DIR:-/tmp}/push-core/push.sock"
  echo "not root: publishing socket at $socket (set PUSH_CORE_SOCKET to choose)"
  args+=(--socket "$socket")
fi
exec target/release/push-core serve "${args[@]}" "$@"

#!/usr/bin/env bash
# The browser end-to-end tests: starts the demo (examples/demo/run: push-core
# and the PHP site with the push extension) on free ports, then runs
# tests/browser/*.test.mjs with node --test, which drive Debian's chromium
# through playwright-core. Screenshots and the demo's log end up in
# tests/browser/artifacts/.
#
# Needs: apt-get install chromium; npm ci in tests/ (scripts/install-deps.sh
# does both). Extra arguments go to node --test, e.g. --test-name-pattern.
set -euo pipefail
cd "$(dirname "$0")/.."   # tests/

chromium=${CHROMIUM_BIN:-/usr/bin/chromium}
if [[ ! -x $chromium ]]; then
  echo "no Chromium at $chromium: apt-get install chromium (or set CHROMIUM_BIN)" >&2
  exit 1
fi
if [[ ! -d node_modules/playwright-core ]]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi

artifacts=browser/artifacts
mkdir -p "$artifacts"
rm -f "$artifacts"/*.png

# Three ports nobody listens on, asked of the kernel at once so they differ.
read -r http_port push_port admin_port < <(node -e '
  const net = require("node:net");
  const listen = () => new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => resolve(server));
  });
  Promise.all([listen(), listen(), listen()]).then((servers) => {
    console.log(servers.map((server) => server.address().port).join(" "));
    for (const server of servers) server.close();
  });')

log=$artifacts/demo.log
DEMO_HTTP_PORT=$http_port DEMO_PUSH_PORT=$push_port DEMO_ADMIN_PORT=$admin_port ../examples/demo/run >"$log" 2>&1 &
demo_pid=$!
stop_demo() {
  # run stops push-core and the site on SIGTERM (SIGINT is ignored by
  # background jobs of a script).
  kill -TERM "$demo_pid" 2>/dev/null || true
  wait "$demo_pid" 2>/dev/null || true
}
trap stop_demo EXIT

# The first run builds push-core and the extension: give it time.
for ((waited = 0; ; waited++)); do
  grep -q "push-core demo: open" "$log" && break
  if ! kill -0 "$demo_pid" 2>/dev/null || ((waited > 1800)); then
    echo "the demo did not start; its log ($log):" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.2
done

status=0
DEMO_URL=http://127.0.0.1:$http_port PUSH_URL=http://127.0.0.1:$push_port ADMIN_URL=http://127.0.0.1:$admin_port CHROMIUM_BIN=$chromium \
  node --test --test-concurrency=1 "$@" browser/*.test.mjs || status=$?
if ((status)); then
  echo "browser tests failed; the demo's log is $PWD/$log, screenshots are in $PWD/$artifacts" >&2
fi
exit "$status"

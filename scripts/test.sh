#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the Rust unit and
# property tests, a short fuzzing run of the publish decoder, the end-to-end
# tests of the daemon with the real socket.io client, the bench's smoke, a
# 30-second chaos run (docs/chaos.md), and the PHP suites
# (extension, FFI, Yii component), and last the Debian packages, installed
# and purged (as root). Installs what is missing first. Exits
# non-zero if any suite failed.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh || { echo "installing dependencies failed"; exit 1; }

passed=0
failed=0
failures=()
suite() {
  local name=$1
  shift
  echo
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

suite "cargo fmt" cargo fmt --all -- --check
suite "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
suite "cargo build" cargo build --workspace
suite "cargo test" cargo test --workspace
suite "fuzz the publish decoder (30 s)" scripts/fuzz.sh 30
suite "daemon end-to-end (node)" bash -c 'cd tests && npm test'
suite "page helper clients/js (node)" bash -c 'cd clients/js && npm test'
suite "bench smoke (push-core and Node deliver every message)" cargo run --quiet -p bench -- smoke
suite "chaos smoke (30 s: three nodes and Redis under faults, no silent gap)" cargo run --quiet -p bench -- chaos --seconds 30 --pages 60
# A runner that is missing or lost its execute bit is a failed suite, not a
# skipped one: a suite that silently stops running looks like a passing one.
runner_unusable() {
  if [[ ! -f $1 ]]; then
    echo "FAILED: the suite's runner $1 is missing"
  else
    echo "FAILED: the suite's runner $1 is not executable; chmod +x $1 (and commit the bit with git update-index --chmod=+x $1)"
  fi
  return 1
}
for runner in tests/php/run.sh tests/yii/run.sh tests/browser/run.sh; do
  if [[ -f $runner && -x $runner ]]; then
    suite "$runner" "$runner"
  else
    suite "$runner" runner_unusable "$runner"
  fi
done
# Last: it installs the Debian packages on this machine (as root, as CI
# runs) and purges them again, even when it fails.
suite "Debian packages (tests/package/run.sh)" tests/package/run.sh

echo
if ((failed)); then
  echo "failed suites: ${failures[*]}"
fi
echo "suites: $passed passed, $failed failed"
((failed == 0))

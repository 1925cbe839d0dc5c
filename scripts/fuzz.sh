#!/usr/bin/env bash
# Fuzzes the publish protocol decoder (fuzz/fuzz_targets/decode_stream.rs)
# for a bounded time, starting from the committed corpus.
#
#   scripts/fuzz.sh [SECONDS]     default 30
#
# Needs cargo-fuzz and a nightly toolchain (scripts/install-deps.sh installs
# cargo-fuzz when nightly is there). Without them it says so and exits 0, so
# that scripts/test.sh still runs everything else. New inputs found during
# the run go to a temporary directory, not the committed corpus; a crash is
# written to fuzz/artifacts/decode_stream/ and fails the run. To keep
# interesting inputs, run cargo fuzz yourself:
#
#   cd fuzz && cargo +nightly fuzz run decode_stream corpus/decode_stream -- -max_total_time=600
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-30}
target=decode_stream

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "SKIPPED: fuzzing needs a nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "SKIPPED: fuzzing needs cargo-fuzz (cargo install cargo-fuzz)"
  exit 0
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The first corpus directory receives new inputs; the committed one is read only.
cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- \
  -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=512 -print_final_stats=1

#!/usr/bin/env bash
# The Yii component's tests: the pure-PHP protocol client and the three
# transports (protocol suite), the component's framework-free parts
# (component), the Yii 1.1 component and auth action (yii1), and the Yii 2
# ones (yii2); all but component against the real push-core daemon with the
# real socket.io client receiving.
#
# Builds push-core, the push extension and the FFI library when their crates
# exist, installs the socket.io client if missing, then runs each suite in
# its own PHP process with the extension loaded and FFI enabled, so every
# transport is exercised. Extra arguments go to phpunit (e.g. --filter X).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

crates=(-p push-core)
[[ -f php-ext/Cargo.toml ]] && crates+=(-p php-ext)
[[ -f push-ffi/Cargo.toml ]] && crates+=(-p push-ffi)
cargo build --quiet "${crates[@]}"

if [[ ! -d tests/node_modules/socket.io-client ]]; then
  (cd tests && npm ci --silent)
fi

# PHP's own conf.d, minus an installed push.ini (php8.2-push, or
# php-ext/install.sh): the suites load the extension just built.
scan_dir=$(mktemp -d)
trap 'rm -rf "$scan_dir"' EXIT
conf_d=$(php --ini | sed -n 's/^Scan for additional .ini files in: //p')
for ini in "$conf_d"/*.ini; do
  case "$ini" in
    *push.ini) ;;
    *) [[ -e $ini ]] && ln -s "$ini" "$scan_dir/" ;;
  esac
done
export PHP_INI_SCAN_DIR="$scan_dir"

php_args=(-d ffi.enable=1 -d zend.assertions=1)
if [[ -f target/debug/libpush.so ]]; then
  php_args+=(-d "extension=$root/target/debug/libpush.so")
else
  echo "note: target/debug/libpush.so is not built; the extension transport tests will be skipped (and fail under CI=true)"
fi
export PUSH_FFI_LIBRARY=${PUSH_FFI_LIBRARY:-$root/target/debug/libpush_ffi.so}
export PUSH_FFI_HEADER=${PUSH_FFI_HEADER:-$root/push-ffi/include/push_ffi.h}

status=0
for suite in protocol component yii1 yii2; do
  echo "=== tests/yii: $suite"
  php "${php_args[@]}" "$(command -v phpunit)" -c tests/yii/phpunit.xml --testsuite "$suite" "$@" || status=1
done
exit $status

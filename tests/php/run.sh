#!/bin/sh
# Runs the PHP tests: the push extension and the C ABI against the real
# daemon, with real socket.io clients receiving.
#
#   tests/php/run.sh [phpunit arguments...]
#
# Builds what it needs (debug), installs the Node test dependencies if they
# are missing, and runs Debian's phpunit in a php that loads the freshly
# built extension. Set CARGO_PROFILE=release to test release builds.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=${CARGO_PROFILE:-debug}

cd "$root"
# The whole workspace, as the other test commands build it: building a
# subset would unify dependency features differently and rebuild them.
if [ "$profile" = release ]; then
    cargo build --workspace --release
else
    cargo build --workspace
fi
if [ ! -d "$root/tests/node_modules/socket.io-client" ]; then
    npm ci --prefix "$root/tests" --no-audit --no-fund
fi

export PUSH_CORE_BIN="$root/target/$profile/push-core"
export PUSH_EXTENSION="$root/target/$profile/libpush.so"
export PUSH_FFI_LIB="$root/target/$profile/libpush_ffi.so"

# PHP's own conf.d, minus an installed push.ini: the tests must load the
# extension just built, not one installed by php-ext/install.sh.
scan_dir=$(mktemp -d)
trap 'rm -rf "$scan_dir"' EXIT
conf_d=$(php --ini | sed -n 's/^Scan for additional .ini files in: //p')
for ini in "$conf_d"/*.ini; do
    case "$ini" in
        *push.ini) ;;
        *) [ -e "$ini" ] && ln -s "$ini" "$scan_dir/" ;;
    esac
done
export PHP_INI_SCAN_DIR="$scan_dir"

php -d extension="$PUSH_EXTENSION" -d ffi.enable=1 "$(command -v phpunit)" -c "$here/phpunit.xml" "$@"

#!/bin/sh
# Installs the push extension, already built, into this machine's PHP:
# the way without Debian packages (those: scripts/package.sh).
#
#   cargo build --release -p php-ext    # as yourself: builds target/release/libpush.so
#   sudo php-ext/install.sh             # as root: installs it
#
# Building and installing are separate steps: a build as root (through sudo,
# cargo is not even on the PATH) would leave a target/ you can no longer
# write to. This script never builds; it refuses when there is nothing built.
# It:
#   1. checks that target/release/libpush.so loads in that PHP (same PHP API);
#   2. copies it to `php-config --extension-dir` as push.so;
#   3. installs php-ext/push.ini (every setting commented, with its default):
#      on Debian/Ubuntu into /etc/php/<version>/mods-available, enabled for
#      every SAPI (cli, fpm, ...) with phpenmod; elsewhere into the conf.d
#      directory `php --ini` reports.
# Restart php-fpm afterwards (e.g. `systemctl restart php8.2-fpm`).
# php-ext/uninstall.sh undoes all of it. PHP_CONFIG selects another PHP
# (default: php-config).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
php_config=${PHP_CONFIG:-php-config}
php=$("$php_config" --php-binary)
version=$("$php_config" --version | cut -d. -f1,2)
extension_dir=$("$php_config" --extension-dir)
mods_available=/etc/php/$version/mods-available
built="$root/target/release/libpush.so"

if [ ! -f "$built" ]; then
    echo "install.sh: $built is not built; build it as yourself (not root) first:" >&2
    echo "  cargo build --release -p php-ext" >&2
    echo "then run: sudo php-ext/install.sh" >&2
    exit 1
fi
# PHP refuses a module built for another PHP API: find out now, not in php-fpm's log.
if ! "$php" -n -d extension="$built" -r 'exit(extension_loaded("push") ? 0 : 1);'; then
    echo "install.sh: $built does not load in $php (PHP $version); rebuild it with PHP_CONFIG=$php_config cargo build --release -p php-ext" >&2
    exit 1
fi

install -m 0644 "$built" "$extension_dir/push.so"
echo "installed $extension_dir/push.so"

if [ -d "$mods_available" ] && command -v phpenmod > /dev/null; then
    install -m 0644 "$here/push.ini" "$mods_available/push.ini"
    echo "wrote $mods_available/push.ini"
    phpenmod -v "$version" push
    echo "enabled for PHP $version (every SAPI) with phpenmod"
else
    conf_d=$("$php" --ini | sed -n 's/^Scan for additional .ini files in: //p')
    if [ -z "$conf_d" ] || [ "$conf_d" = "(none)" ]; then
        echo "this PHP scans no conf.d directory; add extension=push.so to your php.ini" >&2
        exit 1
    fi
    install -m 0644 "$here/push.ini" "$conf_d/20-push.ini"
    echo "wrote $conf_d/20-push.ini"
fi

"$php" --ri push

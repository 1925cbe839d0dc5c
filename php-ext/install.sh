#!/bin/sh
# Builds the push extension and installs it into this machine's PHP.
#
#   php-ext/install.sh
#
# Run it as a user who may write to PHP's extension and config directories
# (root), with cargo on the PATH. It:
#   1. builds target/release/libpush.so;
#   2. copies it to `php-config --extension-dir` as push.so;
#   3. writes push.ini: on Debian/Ubuntu into /etc/php/<version>/mods-available
#      and enables it for every SAPI (cli, fpm, ...) with phpenmod; elsewhere
#      into the conf.d directory `php --ini` reports.
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

(cd "$root" && cargo build --release -p php-ext)
install -m 0644 "$root/target/release/libpush.so" "$extension_dir/push.so"
echo "installed $extension_dir/push.so"

write_ini() {
    cat > "$1" <<INI
; The push extension: publish to push-core from PHP (see php-ext/push.stub.php).
; priority=20
extension=push.so

; The daemon's publish socket.
;push.socket = /run/push-core/push.sock
; Connect and I/O timeout, in milliseconds.
;push.timeout_ms = 1000
; Keep the connection between requests (php-fpm).
;push.persistent = 1
INI
    echo "wrote $1"
}

if [ -d "$mods_available" ] && command -v phpenmod > /dev/null; then
    write_ini "$mods_available/push.ini"
    phpenmod -v "$version" push
    echo "enabled for PHP $version (every SAPI) with phpenmod"
else
    conf_d=$("$php" --ini | sed -n 's/^Scan for additional .ini files in: //p')
    if [ -z "$conf_d" ] || [ "$conf_d" = "(none)" ]; then
        echo "this PHP scans no conf.d directory; add extension=push.so to your php.ini" >&2
        exit 1
    fi
    write_ini "$conf_d/20-push.ini"
fi

"$php" --ri push

#!/bin/sh
# Removes what php-ext/install.sh installed: the push.ini files and push.so.
#
#   php-ext/uninstall.sh
#
# Restart php-fpm afterwards. PHP_CONFIG selects another PHP (default:
# php-config).
set -eu

php_config=${PHP_CONFIG:-php-config}
php=$("$php_config" --php-binary)
version=$("$php_config" --version | cut -d. -f1,2)
extension_dir=$("$php_config" --extension-dir)
mods_available=/etc/php/$version/mods-available

if [ -f "$mods_available/push.ini" ] && command -v phpdismod > /dev/null; then
    phpdismod -v "$version" push
    rm -f "$mods_available/push.ini"
    echo "disabled and removed $mods_available/push.ini"
fi
conf_d=$("$php" --ini | sed -n 's/^Scan for additional .ini files in: //p')
if [ -n "$conf_d" ] && [ -f "$conf_d/20-push.ini" ]; then
    rm -f "$conf_d/20-push.ini"
    echo "removed $conf_d/20-push.ini"
fi
rm -f "$extension_dir/push.so"
echo "removed $extension_dir/push.so"

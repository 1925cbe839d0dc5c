#!/usr/bin/env bash
# Builds the Debian packages, as the user who owns this clone (not root):
#
#   scripts/package.sh
#
# writes into target/debian/:
#   push-core_<version>-1_<arch>.deb    the daemon as a systemd service
#   php<X.Y>-push_<version>-1_<arch>.deb the PHP extension for PHP X.Y
# Installing them is a separate step, as root:
#   sudo apt install ./target/debian/push-core_*.deb ./target/debian/php*-push_*.deb
# (docs/operations.md, "Install and upgrade").
#
# PHP_CONFIG names the php-config of the PHP to build the extension for
# (default: the php-config on PATH). Its headers, its php binary and the
# package's PHP version and API must all agree, or nothing is built.
# The socket.io client bundles and the socket.io Admin UI's page come from
# the npm packages pinned in packaging/client-bundles (npm ci), never from a
# copy in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "package.sh: $*" >&2
  exit 1
}

# Through sudo, cargo is not on root's PATH and target/ would end up owned
# by root: build as the user, install as root.
if [[ $(id -u) -eq 0 && -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
  fail "do not build through sudo; run scripts/package.sh as $SUDO_USER, then install the packages with sudo (see its header)"
fi
command -v cargo-deb > /dev/null || fail "cargo-deb is missing; scripts/install-deps.sh installs it"

# --- The PHP to build for: one PHP, checked from three sides.
php_config=${PHP_CONFIG:-php-config}
php_config=$(readlink -f "$(command -v "$php_config")") && [[ -x $php_config ]] || fail "no php-config found (${PHP_CONFIG:-php-config}); install php8.2-dev or set PHP_CONFIG"
php_version=$("$php_config" --version | cut -d. -f1,2)
php_api=$("$php_config" --phpapi)
php=$("$php_config" --php-binary)
[[ -x $php ]] || fail "$php_config names $php as its PHP, which is not there"
binary_version=$("$php" -n -r 'echo PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION;')
binary_api=$("$php" -n -i | sed -n 's/^PHP API => //p')
if [[ $binary_version != "$php_version" || $binary_api != "$php_api" ]]; then
  fail "$php_config describes PHP $php_version (API $php_api) but its binary $php is PHP $binary_version (API $binary_api); the extension must be built with the headers of the PHP it is installed for: set PHP_CONFIG to the php-config of that PHP"
fi
variant="php$php_version"
# The variant's Debian metadata must name this very PHP.
variant_metadata=$(cargo metadata --no-deps --format-version 1 --offline |
  node -e '
    const meta = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const ext = meta.packages.find((p) => p.name === "php-ext");
    const variant = ext.metadata?.deb?.variants?.[process.argv[1]];
    if (variant) console.log(`${variant.depends}\n${variant.assets.map((a) => a[1]).join(" ")}`);
  ' "$variant")
if [[ -z $variant_metadata ]]; then
  fail "php-ext/Cargo.toml has no Debian variant for PHP $php_version (API $php_api); add [package.metadata.deb.variants.\"$variant\"] like the php8.2 one"
fi
if ! grep -q "phpapi-$php_api\b" <<< "$variant_metadata" || ! grep -q "usr/lib/php/$php_api/" <<< "$variant_metadata"; then
  fail "the $variant variant in php-ext/Cargo.toml is not for PHP API $php_api (php-config's); fix its depends and extension path"
fi

# --- Build once, for both packages.
export PHP="$php" PHP_CONFIG="$php_config"
cargo build --release --locked -p push-core -p php-ext
# The built extension must load in that PHP (a mismatched API is refused by
# PHP itself).
if ! "$php" -n -d extension="$PWD/target/release/libpush.so" -r 'exit(extension_loaded("push") ? 0 : 1);'; then
  fail "target/release/libpush.so does not load in $php"
fi

# --- What the packages ship besides the binaries, generated.
rm -rf target/package
mkdir -p target/package/push-core target/package/client-bundles/dist
# Every setting commented with its default; the service's own choices set.
target/release/push-core config-template \
  --socket /run/push-core/push.sock \
  --state-dir /var/lib/push-core \
  --client-script /usr/share/push-core/socket.io-2.5.0.js \
  > target/package/push-core/push-core.toml
# Pages written for a Node socket.io 2 server load /socket.io/socket.io.js
# and expect the 2.x client (docs/old-clients.md); the 4.x one is shipped
# beside it for new pages.
cp packaging/client-bundles/package.json packaging/client-bundles/package-lock.json target/package/client-bundles/
(cd target/package/client-bundles && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
for package in socket.io-client-v2 socket.io-client; do
  dir=target/package/client-bundles/node_modules/$package
  version=$(node -p "require('./$dir/package.json').version")
  cp "$dir/dist/socket.io.js" "target/package/client-bundles/dist/socket.io-$version.js"
done
[[ -f target/package/client-bundles/dist/socket.io-2.5.0.js ]] || fail "the socket.io-client 2.5.0 bundle is missing from packaging/client-bundles"
# The Admin UI's page (admin_ui_files = "/usr/share/push-core/admin-ui"),
# without its source maps, which push-core does not serve.
admin_ui=target/package/client-bundles/node_modules/@socket.io/admin-ui/ui/dist
[[ -f $admin_ui/index.html ]] || fail "the socket.io Admin UI's page (@socket.io/admin-ui ui/dist) is missing from packaging/client-bundles"
mkdir -p target/package/admin-ui
cp -r "$admin_ui"/. target/package/admin-ui/
find target/package/admin-ui -name '*.map' -delete

# --- The packages.
rm -f target/debian/*.deb target/debian/*.ddeb
# Debug symbols go into -dbgsym packages beside them (.ddeb), which keeps the
# packages small and the line tables at hand for a backtrace.
cargo deb --no-build --dbgsym -p push-core
cargo deb --no-build --dbgsym -p php-ext --variant "$variant"
echo "packages in target/debian/:"
ls -1 target/debian/*.deb target/debian/*.ddeb

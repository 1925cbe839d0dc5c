#!/usr/bin/env bash
# Installs what building and testing push-core needs on Debian 12, and only
# what is missing: PHP 8.2 with its headers (the extension), libclang (the
# extension's bindgen), PHPUnit, php-fpm (the persistent-connection test),
# Chromium (the browser tests), nginx (docs/nginx/push-core.conf in front of
# the daemon; the tests run it in the foreground, never as a service),
# redis-server and redis-tools (the cluster tests run real Redis servers,
# Sentinels (`redis-server --sentinel`, the program Debian's redis-sentinel
# package runs, without that package's system service) and a Redis Cluster
# made with `redis-cli --cluster create`), openssl (the certificates of the
# Redis that cluster.test.mjs reaches over TLS),
# python3-prometheus-client (the real Prometheus parser that
# tests/integration/admin.test.mjs reads /metrics with), the npm packages of the end-to-end tests and of the page helper's
# tests (clients/js) and, where a nightly toolchain is
# installed, cargo-fuzz; and cargo-deb with dpkg-dev for the Debian packages
# (scripts/package.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  php8.2-cli php8.2-dev php8.2-fpm php8.2-curl php8.2-redis php8.2-mbstring php8.2-xml
  libclang1-14 libclang-common-14-dev
  phpunit redis-server redis-tools openssl nodejs npm chromium nginx
  python3-prometheus-client dpkg-dev adduser
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# Node may come from elsewhere than Debian's package; don't fight it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for package in "${missing[@]}"; do
    [[ $package == nodejs || $package == npm ]] || filtered+=("$package")
  done
  missing=("${filtered[@]}")
fi
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

# playwright-core drives Debian's chromium: it must never download browsers.
(cd tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
(cd bench/peer-node && npm ci --no-audit --no-fund --loglevel=error)
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error)

# cargo-fuzz for scripts/fuzz.sh, only where a nightly toolchain exists
# (fuzzing needs one). A failure here is not fatal: the fuzz suite then
# reports itself skipped.
if rustup toolchain list 2>/dev/null | grep -q '^nightly' && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing: cargo-fuzz"
  cargo install --locked cargo-fuzz || echo "warning: cargo-fuzz could not be installed; the fuzz suite will be skipped"
fi

# cargo-deb for scripts/package.sh, at the version the packaging was written
# for; skipped when that version is installed.
cargo_deb_version=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qxF "cargo-deb $cargo_deb_version"; then
  echo "installing: cargo-deb $cargo_deb_version"
  cargo install --locked cargo-deb --version "$cargo_deb_version"
fi

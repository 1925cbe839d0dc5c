#!/usr/bin/env bash
# The Debian packages, end to end, on this machine:
#
#   tests/package/run.sh        (as root: it installs and purges packages)
#
# 1. scripts/package.sh refuses a php-config that does not describe the PHP
#    it names (a fake one first on PATH), then builds both packages;
# 2. dpkg -i installs them: the push-core user, www-data in its group, the
#    config generated with every setting, the extension enabled (php -m),
#    the socket.io Admin UI's page usable as admin_ui_files;
# 3. the packaged daemon runs with the packaged config: under systemd where it
#    runs, else the unit's own ExecStartPre and ExecStart lines as the unit's
#    user, with /run/push-core made as RuntimeDirectory= would make it;
# 4. php, as www-data, publishes through the installed extension, and a real
#    socket.io client receives it; the packaged 2.x bundle is served at
#    /socket.io/socket.io.js;
# 5. installing them again (an upgrade) keeps a changed conffile, and the
#    restarted daemon reads its recovery journal back (the same offset);
# 6. dpkg --purge removes both, and nothing is left: no file of either
#    package, no /etc/push-core, /var/lib/push-core or /run/push-core, no
#    push-core user or group, no push.ini link in PHP's conf.d.
# A trap stops the daemon and purges the packages whatever fails, so that
# the other PHP suites never see a globally enabled extension.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

if [[ $(id -u) -ne 0 ]]; then
  echo "tests/package/run.sh installs packages: run it as root (CI does), on a machine where that is fine" >&2
  exit 1
fi
for package in push-core php8.2-push; do
  if dpkg-query -W -f='${Status}' "$package" 2> /dev/null | grep installed > /dev/null; then
    echo "$package is installed on this machine already; this test would remove it. Purge it first." >&2
    exit 1
  fi
done

scratch=$(mktemp -d)
daemon_pid=
receiver_pid=
cleanup() {
  local status=$?
  [[ -n $receiver_pid ]] && kill "$receiver_pid" 2> /dev/null || true
  if [[ -n $daemon_pid ]]; then
    kill -TERM "$daemon_pid" 2> /dev/null || true
    wait "$daemon_pid" 2> /dev/null || true
  fi
  if [[ $status -ne 0 ]]; then
    echo "--- the daemon's log:"
    if [[ -d /run/systemd/system ]]; then
      journalctl -u push-core --no-pager -n 50 || true
    else
      cat "$scratch/daemon.log" 2> /dev/null || true
    fi
    echo "--- purging after the failure"
    dpkg --purge php8.2-push push-core > /dev/null 2>&1 || true
  fi
  rm -rf "$scratch"
  exit $status
}
trap cleanup EXIT

step() { echo "--- $*"; }
# (grep -q would stop reading at the first match, and under pipefail the
# writer's SIGPIPE would fail the pipeline: matches go to /dev/null instead.)
fail() {
  echo "FAILED: $*" >&2
  exit 1
}
# GET url into a file; fails unless the answer is 2xx (node: curl may be
# missing on a fresh machine).
http_get() {
  node -e '
    fetch(process.argv[1])
      .then(async (r) => { require("fs").writeFileSync(process.argv[2], Buffer.from(await r.arrayBuffer())); process.exit(r.ok ? 0 : 1); })
      .catch(() => process.exit(1));' "$1" "$2"
}
# Waits up to 20 s for a command to succeed.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 200); do
    "$@" && return 0
    sleep 0.1
  done
  fail "gave up waiting for $what"
}

step "package.sh refuses a php-config whose PHP API is not its PHP's"
mkdir "$scratch/fake-bin"
cat > "$scratch/fake-bin/php-config" << 'EOF'
#!/bin/sh
# Describes another PHP's headers, but names this machine's php binary.
case "$1" in
  --phpapi) echo 20240924 ;;
  --version) echo 8.4.1 ;;
  *) exec /usr/bin/php-config "$@" ;;
esac
EOF
chmod +x "$scratch/fake-bin/php-config"
if PATH="$scratch/fake-bin:$PATH" scripts/package.sh > "$scratch/refused.log" 2>&1; then
  fail "package.sh built with a mismatched php-config"
fi
grep -q "describes PHP 8.4 (API 20240924) but its binary /usr/bin/php8.2 is PHP 8.2 (API 20220829)" "$scratch/refused.log" ||
  fail "the refusal does not say what differs: $(cat "$scratch/refused.log")"

step "scripts/package.sh"
scripts/package.sh
daemon_deb=$(ls target/debian/push-core_*.deb)
php_deb=$(ls target/debian/php8.2-push_*.deb)
dpkg-deb -f "$php_deb" Depends | grep "phpapi-$(php-config --phpapi)" > /dev/null || fail "php8.2-push does not depend on phpapi-$(php-config --phpapi)"
dpkg-deb -c "$daemon_deb" | grep '/usr/share/push-core/socket.io-2.5.0.js$' > /dev/null || fail "the 2.x client bundle is not in the package"
for file in index.html css/app.6e3b9661.css js/app.0d7d7845.js img/logo-light.73342c25.svg; do
  dpkg-deb -c "$daemon_deb" | grep "/usr/share/push-core/admin-ui/$file\$" > /dev/null || fail "the Admin UI's $file is not in the package"
done

step "dpkg -i"
dpkg -i "$daemon_deb" "$php_deb"
package_files=$(dpkg -L push-core php8.2-push)

getent passwd push-core > /dev/null || fail "no push-core user"
id -nG www-data | tr ' ' '\n' | grep -x push-core > /dev/null || fail "www-data is not in the group push-core"
[[ $(stat -c %U:%a /var/lib/push-core) == push-core:700 ]] || fail "/var/lib/push-core is $(stat -c %U:%a /var/lib/push-core)"
[[ $(stat -c %a /etc/push-core/push-core.env) == 600 ]] || fail "the EnvironmentFile is not 0600"
for key in $(push-core check-config --config /dev/null | sed -n 's/^\([a-z_]*\) = .*/\1/p'); do
  grep -q "^#$key = " /etc/push-core/push-core.toml || fail "the packaged config does not list $key"
done
grep -qx '/etc/push-core/push-core.toml' /var/lib/dpkg/info/push-core.conffiles || fail "push-core.toml is not a conffile"
push-core --version | grep "publish protocol" > /dev/null || fail "push-core --version does not show the protocol"
php -m | grep -x push > /dev/null || fail "the extension is not enabled for the CLI"
admin_ui_hash=$(php -r 'echo password_hash("x", PASSWORD_BCRYPT, ["cost" => 4]);')
push-core check-config --config /dev/null --admin-listen 127.0.0.1:9464 --admin-ui-username admin \
  --admin-ui-password-hash "$admin_ui_hash" --admin-ui-files /usr/share/push-core/admin-ui > /dev/null ||
  fail "the packaged Admin UI page is not usable as admin_ui_files"
php --ri push | grep "protocol version => " > /dev/null || fail "php --ri push does not show the protocol version"

step "the packaged daemon"
unit=$(dpkg -L push-core | grep '/systemd/system/push-core.service$')
exec_start_pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ $(sed -n 's/^User=//p' "$unit") == push-core ]] || fail "the unit does not run as push-core"
if command -v systemd-analyze > /dev/null; then
  systemd-analyze verify "$unit" > "$scratch/verify.log" 2>&1 || fail "systemd-analyze verify: $(cat "$scratch/verify.log")"
  [[ -s $scratch/verify.log ]] && fail "systemd-analyze verify warns: $(cat "$scratch/verify.log")"
fi
# Browsers connect on a free port: another daemon on this machine may have
# the default one. The EnvironmentFile is where an admin would say so.
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});')
# Starts the service: with systemd where it runs, else as systemd would run
# the unit: RuntimeDirectory=, LimitNOFILE=, the EnvironmentFile, then
# ExecStartPre and ExecStart as User=/Group= with no new privileges.
start_service() {
  if [[ -d /run/systemd/system ]]; then
    systemctl restart push-core
    systemctl is-active --quiet push-core || fail "the service is not active"
  else
    install -d -o push-core -g push-core -m 0750 /run/push-core
    local service_env limit as_service
    mapfile -t service_env < <(grep -E '^[A-Z_]+=' /etc/push-core/push-core.env || true)
    limit=$(sed -n 's/^LimitNOFILE=//p' "$unit")
    ulimit -n "$limit" 2> /dev/null || echo "note: this machine caps open files at $(ulimit -Hn), below the unit's LimitNOFILE=$limit"
    as_service=(env "${service_env[@]}" PUSH_CORE_LISTEN="127.0.0.1:$port" setpriv --reuid=push-core --regid=push-core --init-groups --no-new-privs --)
    # shellcheck disable=SC2086 # the unit's command lines, split as systemd splits them
    "${as_service[@]}" $exec_start_pre > /dev/null || fail "ExecStartPre (check-config) refused the packaged config"
    # shellcheck disable=SC2086
    "${as_service[@]}" $exec_start >> "$scratch/daemon.log" 2>&1 &
    daemon_pid=$!
  fi
  wait_for "the publish socket" test -S /run/push-core/push.sock
  wait_for "/healthz" http_get "http://127.0.0.1:$port/healthz" /dev/null
}
stop_service() {
  if [[ -d /run/systemd/system ]]; then
    systemctl stop push-core
  elif [[ -n $daemon_pid ]]; then
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" || fail "the daemon did not stop cleanly"
    daemon_pid=
  fi
}
[[ -d /run/systemd/system ]] && echo "PUSH_CORE_LISTEN=127.0.0.1:$port" >> /etc/push-core/push-core.env
start_service
[[ $(stat -c %U:%G:%a /run/push-core/push.sock) == push-core:push-core:660 ]] || fail "the socket is $(stat -c %U:%G:%a /run/push-core/push.sock)"
http_get "http://127.0.0.1:$port/socket.io/socket.io.js" "$scratch/served.js" || fail "GET /socket.io/socket.io.js failed"
cmp -s "$scratch/served.js" /usr/share/push-core/socket.io-2.5.0.js || fail "/socket.io/socket.io.js is not the packaged 2.x bundle"

step "php as www-data publishes with the installed extension; a socket.io client receives it"
# The receiver runs until its standard input closes: keep it open on a fifo.
mkfifo "$scratch/receiver-input"
node tests/support/socketio-receiver.mjs "http://127.0.0.1:$port" '[{"name":"page","namespace":"/"}]' \
  < "$scratch/receiver-input" > "$scratch/received" &
receiver_pid=$!
exec 3> "$scratch/receiver-input"
wait_for "the socket.io client to connect" grep -q '"type":"connect"' "$scratch/received"
reached=$(runuser -u www-data -- php -r '
  $push = new PushClient();
  echo $push->sendMsg("packaged", ["from" => "www-data", "extension" => (new ReflectionExtension("push"))->getVersion()]);')
[[ $reached == 1 ]] || fail "sendMsg reached $reached connections, not 1"
wait_for "the message" grep -q '"event":"packaged","data":{"from":"www-data"' "$scratch/received"
# The recovery journal is kept in the state directory, by the service user.
[[ -n $(find /var/lib/push-core -mindepth 1 -user push-core -print -quit) ]] || fail "nothing was written to /var/lib/push-core"
# Another local user is not in the group: the socket refuses them.
if runuser -u nobody -- php -r 'try { (new PushClient())->ping(); exit(0); } catch (PushException $e) { exit($e->getCode() === PushException::UNREACHABLE ? 3 : 1); }'; then
  fail "nobody could publish"
elif [[ $? -ne 3 ]]; then
  fail "nobody was refused, but not as unreachable"
fi
exec 3>&-
wait "$receiver_pid" || true
receiver_pid=

step "upgrade: a changed conffile is kept, and the journal carries the offset across the restart"
offset_before=$(push-core position)
echo '# changed by the admin' >> /etc/push-core/push-core.toml
stop_service # without systemd, dpkg cannot restart what it did not start
dpkg -i "$daemon_deb" "$php_deb"
start_service
grep -x '# changed by the admin' /etc/push-core/push-core.toml > /dev/null || fail "the upgrade replaced the changed push-core.toml"
offset_after=$(push-core position)
[[ $offset_after == "$offset_before" ]] ||
  fail "the offset went from $offset_before to $offset_after across the restart: the journal in /var/lib/push-core was not read back"

step "stop, then dpkg --purge"
stop_service
dpkg --purge php8.2-push push-core

step "nothing is left"
while read -r path; do
  [[ -d $path && ! -L $path ]] && continue # shared directories such as /usr/bin
  [[ -e $path || -L $path ]] && fail "$path is left"
done <<< "$package_files"
for path in /etc/push-core /var/lib/push-core /run/push-core /usr/share/push-core /usr/share/doc/push-core; do
  [[ -e $path ]] && fail "$path is left"
done
getent passwd push-core > /dev/null && fail "the push-core user is left"
getent group push-core > /dev/null && fail "the push-core group is left"
find /etc/php -name '*push.ini' | grep . > /dev/null && fail "a push.ini is left: $(find /etc/php -name '*push.ini')"
compgen -G '/var/lib/php/modules/*/*/*/push' > /dev/null && fail "PHP's record of the module is left"
compgen -G '/var/lib/php/modules/*/registry/push' > /dev/null && fail "PHP's registry of the module is left"
php -m | grep -x push > /dev/null && fail "php still loads push"
echo "packages: built, installed, served, published from PHP as www-data, received, purged without a trace"

#!/bin/sh
# The PHP publish benchmark: the push extension (synchronous and pipelined),
# the pure-PHP client, phpredis PUBLISH, curl to an HTTP publish API, and the
# floor, timed side by side from one PHP process.
#
#   bench/php/run.sh [--cpus LIST] [--iterations N] [--rounds N] [--batch N] [--only NAME,...] [--no-write]
#                    [--baseline PATH]
#
# --baseline PATH also runs that push-core binary (another build, say the
# commit before a change) with its defaults, and times sendMsg() and the
# pipelined route against it in the same rounds, as ratios.
#
# --cpus LIST pins PHP and every server to those CPUs (taskset -c LIST). On a
# virtual machine whose idle vCPUs halt, waking a process on another CPU can
# cost more than any route's own work (docs/benchmarks.md, the unpinned run
# at the end of "How the synchronous publish came down to the floor");
# --cpus 0 shows the routes' own cost without it.
#
# Builds the release daemon and extension, starts push-core (with
# missed-message recovery on, the default; with --recovery-window 0 for
# the "recovery off" routes; and two clusters of three nodes, --adapter
# redis, each on a redis-server of its own, recovery on and off, for the
# "cluster" routes, which publish on the first node), redis-server and
# the native echo server (twice: blocking, and as an epoll event loop) on Unix
# sockets and loopback ports in a temporary directory, runs bench/php/bench.php, prints the table and writes it into
# docs/benchmarks.md (section "PHP publish path"; --no-write skips that).
# Needs php with the redis, curl and sockets extensions, redis-server, redis-cli and gcc.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

write=1
pin=""
baseline=""
previous=""
for argument in "$@"; do
    [ "$argument" = --no-write ] && write=0
    [ "$previous" = --cpus ] && pin=$argument
    [ "$previous" = --baseline ] && baseline=$argument
    case "$argument" in
        --cpus=*) pin=${argument#--cpus=} ;;
        --baseline=*) baseline=${argument#--baseline=} ;;
    esac
    previous=$argument
done
if [ -n "$baseline" ] && [ ! -x "$baseline" ]; then
    echo "bench/php: --baseline $baseline is not an executable push-core" >&2
    exit 2
fi
run() { # command...: runs it on the --cpus CPUs, if any
    if [ -n "$pin" ]; then taskset -c "$pin" "$@"; else "$@"; fi
}
start() { # command... &: the same for a server; exec keeps $! its pid
    if [ -n "$pin" ]; then exec taskset -c "$pin" "$@"; else exec "$@"; fi
}

for tool in php redis-server redis-cli gcc cargo; do
    command -v "$tool" >/dev/null || { echo "bench/php: $tool is needed" >&2; exit 1; }
done

cargo build --release -p push-core -p php-ext

work=$(mktemp -d /tmp/push-bench-php.XXXXXX)
pids=""
cleanup() {
    for pid in $pids; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

gcc -O2 -pthread -o "$work/echo-floor" "$here/echo-floor.c"

free_port() {
    php -r '$s = stream_socket_server("tcp://127.0.0.1:0"); echo substr(strrchr(stream_socket_get_name($s, false), ":"), 1);'
}
wait_for() { # description, test command...
    what=$1
    shift
    tries=0
    until "$@" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 200 ]; then
            echo "bench/php: $what did not come up; its log:" >&2
            cat "$work"/*.log >&2 || true
            exit 1
        fi
        sleep 0.05
    done
}

token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
push_port=$(free_port)
norecovery_port=$(free_port)
redis_port=$(free_port)
cluster_redis_port=$(free_port)
cluster_norecovery_redis_port=$(free_port)

start target/release/push-core serve --socket "$work/push.sock" --listen "127.0.0.1:$push_port" \
    --http-publish-token "$token" --log-level warn >"$work/push-core.log" 2>&1 &
push_pid=$!
pids="$pids $push_pid"
start target/release/push-core serve --socket "$work/push-norecovery.sock" --listen "127.0.0.1:$norecovery_port" \
    --recovery-window 0 --log-level warn >"$work/push-core-norecovery.log" 2>&1 &
norecovery_pid=$!
pids="$pids $norecovery_pid"
start redis-server --port "$redis_port" --bind 127.0.0.1 --unixsocket "$work/redis.sock" --unixsocketperm 700 \
    --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
pids="$pids $redis_pid"
# Each cluster's Redis is its own, so that the phpredis routes' Redis does
# no cluster work and the cluster rows count all of theirs.
start redis-server --port "$cluster_redis_port" --bind 127.0.0.1 \
    --save '' --appendonly no --daemonize no >"$work/redis-cluster.log" 2>&1 &
cluster_redis_pid=$!
pids="$pids $cluster_redis_pid"
start redis-server --port "$cluster_norecovery_redis_port" --bind 127.0.0.1 \
    --save '' --appendonly no --daemonize no >"$work/redis-cluster-norecovery.log" 2>&1 &
cluster_norecovery_redis_pid=$!
pids="$pids $cluster_norecovery_redis_pid"
wait_for "redis-server for the cluster" redis-cli -p "$cluster_redis_port" ping
wait_for "redis-server for the cluster, recovery off" redis-cli -p "$cluster_norecovery_redis_port" ping
cluster_pids=""
cluster_norecovery_pids=""
for node in 1 2 3; do
    start target/release/push-core serve --socket "$work/push-cluster-$node.sock" --listen "127.0.0.1:$(free_port)" \
        --adapter redis --redis-url "redis://127.0.0.1:$cluster_redis_port" --node-id "bench-$node" \
        --log-level warn >"$work/push-core-cluster-$node.log" 2>&1 &
    cluster_pids="$cluster_pids${cluster_pids:+,}$!"
    pids="$pids $!"
    start target/release/push-core serve --socket "$work/push-cluster-norecovery-$node.sock" --listen "127.0.0.1:$(free_port)" \
        --adapter redis --redis-url "redis://127.0.0.1:$cluster_norecovery_redis_port" --node-id "bench-$node" \
        --recovery-window 0 --log-level warn >"$work/push-core-cluster-norecovery-$node.log" 2>&1 &
    cluster_norecovery_pids="$cluster_norecovery_pids${cluster_norecovery_pids:+,}$!"
    pids="$pids $!"
done
baseline_options=""
if [ -n "$baseline" ]; then
    start "$baseline" serve --socket "$work/push-baseline.sock" --listen "127.0.0.1:$(free_port)" \
        --log-level warn >"$work/push-core-baseline.log" 2>&1 &
    pids="$pids $!"
    baseline_options="--push-baseline-socket=$work/push-baseline.sock --push-baseline-pid=$!"
fi
start "$work/echo-floor" "$work/echo.sock" >"$work/echo.log" 2>&1 &
echo_pid=$!
pids="$pids $echo_pid"
start "$work/echo-floor" --epoll "$work/echo-epoll.sock" >"$work/echo-epoll.log" 2>&1 &
echo_epoll_pid=$!
pids="$pids $echo_epoll_pid"

wait_for push-core curl -fsS -o /dev/null "http://127.0.0.1:$push_port/healthz"
wait_for push-core test -S "$work/push.sock"
wait_for "push-core --recovery-window 0" test -S "$work/push-norecovery.sock"
[ -z "$baseline" ] || wait_for "the baseline build of push-core" test -S "$work/push-baseline.sock"
wait_for redis-server test -S "$work/redis.sock"
# Linked: a publish on the first node gets a whole count, once every node
# has reached Redis and answers.
for cluster in push-cluster push-cluster-norecovery; do
    wait_for "the $cluster nodes to link through Redis" sh -c \
        "target/release/push-core send --socket '$work/$cluster-1.sock' --namespace / --event warm-up --user nobody null 2>&1 | grep -qx 0"
done
wait_for echo-floor test -S "$work/echo.sock"
wait_for "echo-floor --epoll" test -S "$work/echo-epoll.sock"

# PHP's own conf.d minus an installed push.ini, so the extension just built
# is the one loaded (as tests/php/run.sh does).
mkdir "$work/conf.d"
conf_d=$(php --ini | sed -n 's/^Scan for additional .ini files in: //p')
for ini in "$conf_d"/*.ini; do
    case "$ini" in
        *push.ini) ;;
        *) [ -e "$ini" ] && ln -s "$ini" "$work/conf.d/" ;;
    esac
done
export PHP_INI_SCAN_DIR="$work/conf.d"
extensions="-d extension=$root/target/release/libpush.so"
for extension in redis curl sockets; do
    php -r "exit(extension_loaded('$extension') ? 0 : 1);" || extensions="$extensions -d extension=$extension.so"
done

markdown=""
[ "$write" = 1 ] && markdown="--markdown=$root/docs/benchmarks.md"
pinned=""
[ -n "$pin" ] && pinned="--pinned=$pin"
# Options bench.php does not know (--no-write) are ignored by its getopt.
# shellcheck disable=SC2086
run php $extensions "$here/bench.php" $pinned \
    --push-socket="$work/push.sock" --echo-socket="$work/echo.sock" --echo-epoll-socket="$work/echo-epoll.sock" \
    --redis-socket="$work/redis.sock" --redis-port="$redis_port" \
    --http-url="http://127.0.0.1:$push_port" --http-token="$token" \
    --push-norecovery-socket="$work/push-norecovery.sock" --push-norecovery-pid="$norecovery_pid" \
    --push-cluster-socket="$work/push-cluster-1.sock" --push-cluster-pids="$cluster_pids" --cluster-redis-pid="$cluster_redis_pid" \
    --push-cluster-norecovery-socket="$work/push-cluster-norecovery-1.sock" --push-cluster-norecovery-pids="$cluster_norecovery_pids" \
    --cluster-norecovery-redis-pid="$cluster_norecovery_redis_pid" \
    --push-pid="$push_pid" --redis-pid="$redis_pid" --echo-pid="$echo_pid" --echo-epoll-pid="$echo_epoll_pid" \
    $markdown $baseline_options "$@"

<?php

declare(strict_types=1);

/**
 * The PHP publish benchmark: every way a PHP process can hand a message to
 * a real-time server, timed side by side from this one process.
 *
 * bench/php/run.sh starts the servers and runs this script; run it directly
 * only with servers of your own (see --help). Each route is timed call by
 * call with hrtime(true). The routes take turns: after a warm-up round, each
 * of --rounds rounds runs every route once more, in SLICES_PER_ROUND turns
 * of about a thousand calls each, so that load from outside the benchmark (a
 * build, another benchmark, a busy neighbour on a virtual machine's host)
 * falls on all routes alike instead of on whichever happened to run at that
 * moment.
 *
 * A publish here reaches no browser: the daemon still decodes, checks,
 * selects its recipients (none) and answers, which is the whole round trip
 * PHP waits for.
 */

const USAGE = <<<'TXT'
    usage: php -d extension=libpush.so bench.php --push-socket PATH --echo-socket PATH
               --redis-socket PATH --redis-port PORT --http-url URL --http-token SECRET
               [--iterations N] [--rounds N] [--batch N] [--markdown FILE] [--note TEXT]
               [--only NAME[,NAME...]] [--push-norecovery-socket PATH]
               [--push-cluster-socket PATH] [--push-cluster-norecovery-socket PATH]
               [--push-baseline-socket PATH]

    --iterations  calls per route for the fast routes (default 50000); curl with a
                  new handle per call does a tenth of them (each one costs a TCP
                  connection, and the ephemeral ports it leaves in TIME_WAIT)
    --rounds      the iterations are split over this many interleaved rounds (default 5)
    --batch       publishes between queue() and flush() in pipelined mode (default 1000)
    --markdown    write the results into this file between the php-publish markers
    --note        a line about the machine's state, written into the markdown
    --only        run only the routes whose names contain one of these words
    --push-norecovery-socket
                  a second push-core started with --recovery-window 0: adds the
                  "recovery off" routes, to compare with the daemon at --push-socket
                  (recovery on, the default)
    --push-cluster-socket
                  the first node of a cluster (--adapter redis, three nodes on a
                  redis-server of their own): adds the "cluster" routes, to compare
                  with the single daemon at --push-socket; --push-cluster-pids and
                  --cluster-redis-pid name the processes whose CPU they count
    --push-cluster-norecovery-socket
                  the same with --recovery-window 0 on every node (its own Redis too):
                  adds the "cluster, recovery off" routes, to compare with the daemon at
                  --push-norecovery-socket
    --push-baseline-socket
                  another build of push-core (run.sh --baseline PATH), default settings:
                  adds the "baseline build" routes, to compare with the daemon at
                  --push-socket; --push-baseline-pid names its process
    TXT;

/** The message every route publishes, encoded per call as a site would. */
const MESSAGE = ['id' => 4242, 'title' => 'Hello from PHP', 'unread' => 3, 'tags' => ['news', 'php']];

const EVENT = 'bench';

/**
 * Turns each route takes per round. A virtual machine can run markedly
 * slower for seconds at a time while its host is busy (docs/benchmarks.md,
 * "How the synchronous publish came down to the floor", has the figure for
 * the machine measured); in turns a fraction of a second long, every
 * route gets its share of such spells.
 */
const SLICES_PER_ROUND = 10;

/** The socket.io Redis emitter's channel for namespace '/'. */
const EMITTER_CHANNEL = 'socket.io#/#';

/** Linux's USER_HZ, the unit of CPU times in /proc/PID/stat. */
const CLOCK_TICKS = 100;

const START_MARKER = '<!-- php-publish:start -->';
const END_MARKER = '<!-- php-publish:end -->';

/**
 * One way of publishing: a name, a line saying what it is, and how to set it
 * up. `setup` returns the function timed per call; for a pipelined route it
 * returns [queue, send, flush] instead, and each batch is timed send by send.
 */
final class Route
{
    /** @var list<int> nanoseconds per call, over every round */
    public array $samples = [];
    /** @var list<float> the median of each round, in microseconds */
    public array $roundMedians = [];
    public int $calls = 0;
    /** Wall time of the timed calls, flushes included, in nanoseconds. */
    public int $wallNs = 0;
    /** CPU time of this PHP process over the timed calls, in microseconds. */
    public float $phpCpuUs = 0;
    /** CPU time of the server answering, over the timed calls, in microseconds. */
    public float $serverCpuUs = 0;
    /** @var \Closure|array{\Closure, \Closure, \Closure}|null */
    public \Closure|array|null $call = null;

    /**
     * @param \Closure(): (\Closure|array{\Closure, \Closure, \Closure}) $setup
     */
    public function __construct(
        public readonly string $name,
        public readonly string $what,
        public readonly \Closure $setup,
        public readonly bool $pipelined = false,
        public readonly float $share = 1.0,
        /** Which server answers: a key of the --*-pid options. */
        public readonly string $server = 'push',
    ) {
    }
}

function main(array $argv): int
{
    $options = getopt('', [
        'push-socket:', 'echo-socket:', 'redis-socket:', 'redis-port:', 'http-url:', 'http-token:',
        'echo-epoll-socket:', 'push-norecovery-socket:', 'push-norecovery-pid:', 'push-cluster-socket:', 'push-cluster-pids:', 'cluster-redis-pid:', 'push-cluster-norecovery-socket:', 'push-cluster-norecovery-pids:', 'cluster-norecovery-redis-pid:', 'push-baseline-socket:', 'push-baseline-pid:', 'baseline:', 'push-pid:', 'echo-pid:', 'echo-epoll-pid:', 'redis-pid:', 'iterations:', 'rounds:', 'batch:', 'markdown:', 'note:', 'only:', 'pinned:', 'cpus:', 'help',
    ]);
    // --baseline is run.sh's (it starts that build and passes its socket);
    // it is named here so that getopt reads past its value.
    // An option given twice (run.sh passes its defaults first) counts once, the last time.
    $options = array_map(static fn ($value) => is_array($value) ? end($value) : $value, $options);
    if (isset($options['help'])) {
        fwrite(STDOUT, USAGE . "\n");
        return 0;
    }
    foreach (['push-socket', 'echo-socket', 'redis-socket', 'redis-port', 'http-url', 'http-token'] as $required) {
        if (!isset($options[$required])) {
            fwrite(STDERR, "missing --{$required}\n" . USAGE . "\n");
            return 2;
        }
    }
    foreach (['push' => 'PushClient', 'redis' => 'Redis', 'curl' => 'curl_init', 'sockets' => 'socket_create'] as $extension => $symbol) {
        if (!extension_loaded($extension)) {
            fwrite(STDERR, "the PHP extension '{$extension}' ({$symbol}) is not loaded\n");
            return 2;
        }
    }
    require_once dirname(__DIR__, 2) . '/yii-component/autoload.php';

    $iterations = (int) ($options['iterations'] ?? 50000);
    $rounds = max(1, (int) ($options['rounds'] ?? 5));
    $batch = max(1, (int) ($options['batch'] ?? 1000));
    $routes = routes($options, $batch);
    if (isset($options['only'])) {
        $words = explode(',', (string) $options['only']);
        $routes = array_values(array_filter(
            $routes,
            static fn (Route $r): bool => str_starts_with($r->name, 'floor') || array_filter($words, static fn ($w) => str_contains($r->name, $w)) !== [],
        ));
    }

    $loadBefore = sys_getloadavg();
    $started = date('Y-m-d H:i T');
    foreach ($routes as $route) {
        $route->call = ($route->setup)();
    }
    // Warm-up: connections opened, handshakes done, caches and branch
    // predictors warm, the daemon's buffers grown.
    foreach ($routes as $route) {
        runSlice($route, max(100, intdiv((int) ($iterations * $route->share), 10)), $batch);
    }
    // The processes whose CPU counts as the server's, by Route::$server. A
    // cluster's publish is every node's work and Redis's (the Lua script
    // that numbers it, the survey of the other nodes, each node reading it),
    // so all are counted.
    $pid = static fn (string $option): int => (int) ($options[$option] ?? 0);
    $pidList = static fn (string $option): array => array_map('intval', array_filter(explode(',', (string) ($options[$option] ?? ''))));
    $pids = [
        'push' => [$pid('push-pid')],
        'push-norecovery' => [$pid('push-norecovery-pid')],
        'push-baseline' => [$pid('push-baseline-pid')],
        'push-cluster' => [...$pidList('push-cluster-pids'), $pid('cluster-redis-pid')],
        'push-cluster-norecovery' => [...$pidList('push-cluster-norecovery-pids'), $pid('cluster-norecovery-redis-pid')],
        'echo' => [$pid('echo-pid')],
        'echo-epoll' => [$pid('echo-epoll-pid')],
        'redis' => [$pid('redis-pid')],
    ];
    for ($round = 1; $round <= $rounds; $round++) {
        $roundSamples = array_fill(0, count($routes), []);
        for ($slice = 0; $slice < SLICES_PER_ROUND; $slice++) {
            foreach ($routes as $index => $route) {
                $calls = max(1, intdiv((int) ($iterations * $route->share), $rounds * SLICES_PER_ROUND));
                $php = ownCpuUs();
                $server = processesCpuUs($pids[$route->server]);
                [$samples, $wall] = runSlice($route, $calls, $batch);
                $route->phpCpuUs += ownCpuUs() - $php;
                $route->serverCpuUs += processesCpuUs($pids[$route->server]) - $server;
                array_push($roundSamples[$index], ...$samples);
                array_push($route->samples, ...$samples);
                $route->calls += $calls;
                $route->wallNs += $wall;
            }
        }
        foreach ($routes as $index => $route) {
            $route->roundMedians[] = median($roundSamples[$index]) / 1000;
        }
        fprintf(STDERR, "round %d/%d done\n", $round, $rounds);
    }
    $loadAfter = sys_getloadavg();

    $rows = array_map(summary(...), $routes);
    $floor = $rows[0]['median'];
    $text = table($rows, $floor);
    fwrite(STDOUT, $text);
    $verdicts = targets($rows, $floor);
    foreach ($verdicts as $verdict) {
        fwrite(STDOUT, $verdict['line'] . "\n");
    }
    foreach ([...recoveryRatios($rows), ...clusterRatios($rows), ...baselineRatios($rows)] as $line) {
        fwrite(STDOUT, $line . "\n");
    }
    $steadiness = steadiness($rows[0]);
    fwrite(STDOUT, $steadiness . "\n");

    if (isset($options['markdown'])) {
        $context = [
            'started' => $started,
            'load_before' => $loadBefore,
            'load_after' => $loadAfter,
            'iterations' => $iterations,
            'rounds' => $rounds,
            'batch' => $batch,
            'note' => $options['note'] ?? '',
            'pinned' => $options['pinned'] ?? '',
            'steadiness' => $steadiness,
        ];
        writeMarkdown((string) $options['markdown'], markdown($rows, $floor, $verdicts, $context));
        fwrite(STDOUT, "written to {$options['markdown']}\n");
    }
    return 0;
}

/** @return list<Route> the floor first: every ratio is to it */
function routes(array $options, int $batch): array
{
    $pushSocket = (string) $options['push-socket'];
    $echoSocket = (string) $options['echo-socket'];
    $echoEpollSocket = (string) ($options['echo-epoll-socket'] ?? '');
    $noRecoverySocket = (string) ($options['push-norecovery-socket'] ?? '');
    $clusterSocket = (string) ($options['push-cluster-socket'] ?? '');
    $clusterNoRecoverySocket = (string) ($options['push-cluster-norecovery-socket'] ?? '');
    $baselineSocket = (string) ($options['push-baseline-socket'] ?? '');
    $redisSocket = (string) $options['redis-socket'];
    $redisPort = (int) $options['redis-port'];
    $httpUrl = rtrim((string) $options['http-url'], '/') . '/api/publish';
    $httpHeaders = ['Content-Type: application/json', 'Authorization: Bearer ' . $options['http-token'], 'Expect:'];

    // The floor's request is a publish frame as the extension writes it,
    // made once: the floor does no encoding, only the round trip.
    $floorFrame = publishFrame(json_encode(MESSAGE));

    $floor = static function (string $socket) use ($floorFrame): \Closure {
        $stream = stream_socket_client("unix://{$socket}", $errno, $errstr, 1.0);
        if ($stream === false) {
            throw new RuntimeException("echo server at {$socket}: {$errstr}");
        }
        return static function () use ($stream, $floorFrame): void {
            fwrite($stream, $floorFrame);
            if (strlen(fread($stream, 4)) !== 4) {
                throw new RuntimeException('short read from the echo server');
            }
        };
    };

    $routes = [
        new Route('floor', 'fwrite() + fread() of a 4-byte reply, Unix socket, native echo server (blocking read/write)', server: 'echo', setup: static fn (): \Closure => $floor($echoSocket)),
        new Route('floor, epoll server', 'the same, the echo server waiting in epoll_wait() as an event loop does', server: 'echo-epoll', setup: static fn (): \Closure => $floor($echoEpollSocket)),
        new Route('floor, ext-sockets', 'socket_write() + socket_read() of a 4-byte reply, same echo server', server: 'echo', setup: static function () use ($echoSocket, $floorFrame): \Closure {
            $socket = socket_create(AF_UNIX, SOCK_STREAM, 0);
            if (!socket_connect($socket, $echoSocket)) {
                throw new RuntimeException("echo server at {$echoSocket}: " . socket_strerror(socket_last_error($socket)));
            }
            return static function () use ($socket, $floorFrame): void {
                socket_write($socket, $floorFrame);
                if (strlen((string) socket_read($socket, 4)) !== 4) {
                    throw new RuntimeException('short read from the echo server');
                }
            };
        }),
        new Route('push-core, raw frame', 'fwrite() + fread() of the floor\'s ready-made frame to push-core: the daemon\'s share, without the extension', static function () use ($pushSocket, $floorFrame): \Closure {
            $stream = stream_socket_client("unix://{$pushSocket}", $errno, $errstr, 1.0);
            if ($stream === false) {
                throw new RuntimeException("push-core at {$pushSocket}: {$errstr}");
            }
            $hello = pack('CN', 0x01, 1) . pack('n', 1) . pack('n', 5) . 'bench';
            fwrite($stream, pack('N', strlen($hello)) . $hello);
            $length = unpack('N', (string) fread($stream, 4))[1];
            fread($stream, $length);
            return static function () use ($stream, $floorFrame): void {
                fwrite($stream, $floorFrame);
                // PUBLISHED: length, kind, request id and a u32 of recipients.
                if (fread($stream, 13) !== "\x00\x00\x00\x09\x83\x00\x00\x00\x01\x00\x00\x00\x00") {
                    throw new RuntimeException('push-core did not answer PUBLISHED to 0 connections');
                }
            };
        }),
        new Route('push ext sendMsg', 'PushClient::sendMsg(), reply awaited', static function () use ($pushSocket): \Closure {
            $client = new PushClient($pushSocket);
            return static function () use ($client): void {
                if ($client->sendMsg(EVENT, MESSAGE) !== 0) {
                    throw new RuntimeException('a browser is connected to the benchmark daemon');
                }
            };
        }),
        new Route('push ext pipelined', "PushClient::queue(), sendMsg() x{$batch}, flush()", static function () use ($pushSocket): array {
            return pipelinedCalls(new PushClient($pushSocket));
        }, pipelined: true),
        // The same two routes against the daemon with recovery off: what
        // numbering and keeping each message for replay costs the publisher.
        new Route('push ext sendMsg, recovery off', 'PushClient::sendMsg(), reply awaited, to push-core with --recovery-window 0', server: 'push-norecovery', setup: static function () use ($noRecoverySocket): \Closure {
            $client = new PushClient($noRecoverySocket);
            return static function () use ($client): void {
                if ($client->sendMsg(EVENT, MESSAGE) !== 0) {
                    throw new RuntimeException('a browser is connected to the benchmark daemon');
                }
            };
        }),
        new Route('push ext pipelined, recovery off', "the same as push ext pipelined, to push-core with --recovery-window 0", server: 'push-norecovery', setup: static function () use ($noRecoverySocket): array {
            return pipelinedCalls(new PushClient($noRecoverySocket));
        }, pipelined: true),
        // The same two routes against another build of push-core: a
        // change's cost to the publisher, measured in the same minutes.
        new Route('push ext sendMsg, baseline build', 'PushClient::sendMsg(), reply awaited, to the baseline build of push-core (run.sh --baseline)', server: 'push-baseline', setup: static function () use ($baselineSocket): \Closure {
            $client = new PushClient($baselineSocket);
            return static function () use ($client): void {
                if ($client->sendMsg(EVENT, MESSAGE) !== 0) {
                    throw new RuntimeException('a browser is connected to the benchmark daemon');
                }
            };
        }),
        new Route('push ext pipelined, baseline build', 'the same as push ext pipelined, to the baseline build', server: 'push-baseline', setup: static function () use ($baselineSocket): array {
            return pipelinedCalls(new PushClient($baselineSocket));
        }, pipelined: true),
        // The same routes against the first of three nodes of a cluster
        // (on a Redis of their own), recovery on and off: what the Redis
        // round trips of a publish, and the other nodes' counts, cost the
        // publisher.
        ...clusterRoutes('cluster', 'push-cluster', $clusterSocket),
        ...clusterRoutes('cluster, recovery off', 'push-cluster-norecovery', $clusterNoRecoverySocket),
        new Route('(a) pure PHP sendMsg', 'yii-component Protocol\\Client::sendMsg() over stream_socket_client, reply awaited', static function () use ($pushSocket): \Closure {
            $client = new PushCore\Yii\Protocol\Client($pushSocket);
            return static function () use ($client): void {
                if ($client->sendMsg(EVENT, MESSAGE) !== 0) {
                    throw new RuntimeException('unexpected recipients');
                }
            };
        }),
        new Route('(a) pure PHP pipelined', "the same client, queue(), sendMsg() x{$batch}, flush()", static function () use ($pushSocket): array {
            return pipelinedCalls(new PushCore\Yii\Protocol\Client($pushSocket));
        }, pipelined: true),
        new Route('(b) phpredis PUBLISH, unix', 'Redis::publish() of an emitter packet, redis-server over its Unix socket', server: 'redis', setup: static function () use ($redisSocket): \Closure {
            return redisPublish(static fn (Redis $redis): bool => $redis->connect($redisSocket));
        }),
        new Route('(b) phpredis PUBLISH, tcp', 'the same over TCP 127.0.0.1', server: 'redis', setup: static function () use ($redisPort): \Closure {
            return redisPublish(static fn (Redis $redis): bool => $redis->connect('127.0.0.1', $redisPort));
        }),
        new Route('(c) curl POST, kept handle', 'curl_exec() to push-core\'s POST /api/publish, one handle kept alive', static function () use ($httpUrl, $httpHeaders): \Closure {
            $handle = curl_init($httpUrl);
            curl_setopt_array($handle, [CURLOPT_POST => true, CURLOPT_HTTPHEADER => $httpHeaders, CURLOPT_RETURNTRANSFER => true]);
            return static function () use ($handle): void {
                curl_setopt($handle, CURLOPT_POSTFIELDS, json_encode(['namespace' => '/', 'event' => EVENT, 'data' => MESSAGE]));
                checkHttp($handle, curl_exec($handle));
            };
        }),
        new Route('(c) curl POST, new handle', 'curl_init() + curl_exec() + curl_close() per call: a TCP connection each', static function () use ($httpUrl, $httpHeaders): \Closure {
            return static function () use ($httpUrl, $httpHeaders): void {
                $handle = curl_init($httpUrl);
                curl_setopt_array($handle, [
                    CURLOPT_POST => true,
                    CURLOPT_HTTPHEADER => $httpHeaders,
                    CURLOPT_RETURNTRANSFER => true,
                    CURLOPT_POSTFIELDS => json_encode(['namespace' => '/', 'event' => EVENT, 'data' => MESSAGE]),
                ]);
                checkHttp($handle, curl_exec($handle));
                curl_close($handle);
            };
        }, share: 0.1),
    ];
    if ($echoEpollSocket === '') {
        $routes = array_values(array_filter($routes, static fn (Route $r): bool => $r->server !== 'echo-epoll'));
    }
    if ($noRecoverySocket === '') {
        $routes = array_values(array_filter($routes, static fn (Route $r): bool => $r->server !== 'push-norecovery'));
    }
    $absent = array_keys(array_filter([
        'push-baseline' => $baselineSocket === '',
        'push-cluster' => $clusterSocket === '',
        'push-cluster-norecovery' => $clusterNoRecoverySocket === '',
    ]));
    return array_values(array_filter($routes, static fn (Route $r): bool => !in_array($r->server, $absent, true)));
}

/**
 * What the socket.io Redis emitter publishes: [emitter id, packet, options].
 * The emitter packs it with msgpack; JSON is used here (no msgpack extension
 * is installed), which is the same work for a message this small.
 */
function redisPublish(\Closure $connect): \Closure
{
    $redis = new Redis();
    if (!$connect($redis)) {
        throw new RuntimeException('cannot connect to redis-server');
    }
    return static function () use ($redis): void {
        $packet = json_encode(['emitter', ['type' => 2, 'data' => [EVENT, MESSAGE], 'nsp' => '/'], ['rooms' => [], 'flags' => []]]);
        if ($redis->publish(EMITTER_CHANNEL, $packet) === false) {
            throw new RuntimeException('PUBLISH failed');
        }
    };
}

function checkHttp(CurlHandle $handle, string|bool $body): void
{
    $status = curl_getinfo($handle, CURLINFO_RESPONSE_CODE);
    if ($status !== 200 || !is_string($body) || !str_contains($body, '"recipients":0')) {
        throw new RuntimeException("HTTP publish failed: {$status} " . curl_error($handle) . ' ' . var_export($body, true));
    }
}

/** A PUBLISH frame of the protocol (docs/protocol.md) to '/', broadcast. */
/**
 * The three calls of a pipelined route, for either client (both have
 * queue(), sendMsg() and flush()): start queueing, one publish, flush.
 *
 * @return array{\Closure, \Closure, \Closure}
 */
function pipelinedCalls(PushClient|PushCore\Yii\Protocol\Client $client): array
{
    return [
        static function () use ($client): void {
            $client->queue();
        },
        static function () use ($client): void {
            $client->sendMsg(EVENT, MESSAGE);
        },
        static function () use ($client): void {
            foreach ($client->flush() as $result) {
                if ($result !== 0) {
                    throw new RuntimeException('pipelined publish failed: ' . ($result instanceof Throwable ? $result->getMessage() : $result));
                }
            }
        },
    ];
}

/**
 * sendMsg() and the pipelined route against the first node of a cluster,
 * named "push ext ..., $label".
 *
 * @return list<Route>
 */
function clusterRoutes(string $label, string $server, string $socket): array
{
    return [
        new Route("push ext sendMsg, {$label}", "PushClient::sendMsg(), reply awaited, to the first of three push-core nodes with --adapter redis ({$label})", server: $server, setup: static function () use ($socket): \Closure {
            $client = new PushClient($socket);
            return static function () use ($client): void {
                if ($client->sendMsg(EVENT, MESSAGE) !== 0) {
                    throw new RuntimeException('a browser is connected to the benchmark cluster');
                }
            };
        }),
        new Route("push ext pipelined, {$label}", "the same as push ext pipelined, to the first of three nodes ({$label})", server: $server, setup: static function () use ($socket): array {
            return pipelinedCalls(new PushClient($socket));
        }, pipelined: true),
    ];
}

function publishFrame(string $payload): string
{
    $str = static fn (string $s): string => pack('n', strlen($s)) . $s;
    $body = pack('CN', 0x03, 1) . $str('/') . $str(EVENT) . pack('nnn', 0, 0, 0) . pack('N', strlen($payload)) . $payload;
    return pack('N', strlen($body)) . $body;
}

/** User plus system CPU time of this process, in microseconds. */
function ownCpuUs(): float
{
    $usage = getrusage();
    return ($usage['ru_utime.tv_sec'] + $usage['ru_stime.tv_sec']) * 1e6
        + $usage['ru_utime.tv_usec'] + $usage['ru_stime.tv_usec'];
}

/** User plus system CPU time of another process (all its threads), in microseconds; 0 if unknown. */
function processCpuUs(int $pid): float
{
    $stat = $pid > 0 ? @file_get_contents("/proc/{$pid}/stat") : false;
    if ($stat === false) {
        return 0.0;
    }
    // The fields after the command name, which may contain spaces.
    $fields = explode(' ', substr($stat, strrpos($stat, ')') + 2));
    return ((int) $fields[11] + (int) $fields[12]) * 1e6 / CLOCK_TICKS;
}

/** @param list<int> $pids CPU time of these processes added up, in microseconds. */
function processesCpuUs(array $pids): float
{
    return array_sum(array_map(processCpuUs(...), $pids));
}

/** Times $calls calls of $route, one hrtime() pair per call. */
/**
 * Times `$calls` calls of a route.
 *
 * @return array{list<int>, int} the time of each call and the wall time of
 *     them all (flushes included), in nanoseconds
 */
function runSlice(Route $route, int $calls, int $batch): array
{
    $samples = [];
    if ($route->pipelined) {
        [$queue, $send, $flush] = $route->call;
        $started = hrtime(true);
        for ($done = 0; $done < $calls;) {
            $queue();
            $n = min($batch, $calls - $done);
            for ($i = 0; $i < $n; $i++) {
                $t0 = hrtime(true);
                $send();
                $samples[] = hrtime(true) - $t0;
            }
            $flush();
            $done += $n;
        }
        $wall = hrtime(true) - $started;
    } else {
        $call = $route->call;
        $started = hrtime(true);
        for ($i = 0; $i < $calls; $i++) {
            $t0 = hrtime(true);
            $call();
            $samples[] = hrtime(true) - $t0;
        }
        $wall = hrtime(true) - $started;
    }
    return [$samples, $wall];
}

/** @param list<int|float> $values */
function median(array $values): int|float
{
    sort($values);
    return $values[intdiv(count($values), 2)];
}

/** @return array{name: string, what: string, calls: int, median: float, p99: float, per_second: float, pipelined: bool} */
function summary(Route $route): array
{
    $samples = $route->samples;
    sort($samples);
    $n = count($samples);
    $at = static fn (float $q): float => $samples[min($n - 1, (int) floor($q * ($n - 1) + 0.5))] / 1000;
    return [
        'name' => $route->name,
        'what' => $route->what,
        'calls' => $route->calls,
        'median' => $at(0.5),
        'p99' => $at(0.99),
        'per_second' => $route->calls / ($route->wallNs / 1e9),
        'pipelined' => $route->pipelined,
        'round_medians' => $route->roundMedians,
        'php_cpu' => $route->phpCpuUs / $route->calls,
        'server_cpu' => $route->serverCpuUs / $route->calls,
    ];
}

function table(array $rows, float $floor): string
{
    $lines = [sprintf('%-34s %8s %10s %9s %10s %8s %8s %8s', 'route', 'calls', 'median µs', 'p99 µs', 'calls/s', 'x floor', 'php cpu', 'srv cpu')];
    foreach ($rows as $row) {
        $lines[] = sprintf(
            '%-34s %8d %10.2f %9.2f %10s %8.2f %8.2f %8.2f',
            $row['name'],
            $row['calls'],
            $row['median'],
            $row['p99'],
            number_format($row['per_second']),
            $row['median'] / $floor,
            $row['php_cpu'],
            $row['server_cpu'],
        );
    }
    $lines[] = '(php cpu, srv cpu: CPU µs per call, user + system, of this PHP process and of the server answering)';
    return implode("\n", $lines) . "\n";
}

/** @return list<array{met: bool, line: string}> */
function targets(array $rows, float $floor): array
{
    $by = array_column($rows, null, 'name');
    $verdicts = [];
    $add = static function (bool $met, string $line) use (&$verdicts): void {
        $verdicts[] = ['met' => $met, 'line' => ($met ? 'met:     ' : 'NOT met: ') . $line];
    };
    if (isset($by['push ext sendMsg'])) {
        $sync = $by['push ext sendMsg']['median'];
        $line = sprintf('sendMsg median %.2f µs ≤ 1.15 × floor (%.2f µs): %.2f×', $sync, 1.15 * $floor, $sync / $floor);
        $others = [];
        foreach (['floor, epoll server' => 'epoll', 'floor, ext-sockets' => 'ext-sockets'] as $other => $label) {
            if (isset($by[$other])) {
                $others[] = sprintf('%.2f× the %s floor', $sync / $by[$other]['median'], $label);
            }
        }
        if ($others !== []) {
            $line .= ' (' . implode(', ', $others) . ')';
        }
        $add($sync <= 1.15 * $floor, $line);
        if (isset($by['(b) phpredis PUBLISH, unix'])) {
            $redis = $by['(b) phpredis PUBLISH, unix']['median'];
            $add($sync < $redis, sprintf('sendMsg median %.2f µs < phpredis PUBLISH over Unix socket %.2f µs', $sync, $redis));
        }
    }
    if (isset($by['push ext pipelined'])) {
        $pipelined = $by['push ext pipelined'];
        $add($pipelined['median'] <= 2.0, sprintf('pipelined median %.2f µs ≤ 2 µs per message', $pipelined['median']));
        $add($pipelined['per_second'] >= 500000, sprintf('pipelined %s messages/s ≥ 500,000 (flushes included)', number_format($pipelined['per_second'])));
    }
    return $verdicts;
}

/**
 * The cost of missed-message recovery to the publisher: each push ext route
 * against the daemon with recovery on (the default) over the same route
 * against the daemon started with --recovery-window 0. Not a target, a ratio.
 *
 * @return list<string> one line per pair present in this run
 */
function recoveryRatios(array $rows): array
{
    $by = array_column($rows, null, 'name');
    $lines = [];
    foreach (['push ext sendMsg', 'push ext pipelined'] as $on) {
        $off = "{$on}, recovery off";
        if (!isset($by[$on], $by[$off])) {
            continue;
        }
        $lines[] = sprintf(
            'recovery on / off, %s: median %.2f / %.2f µs = %.3f×, calls/s %s / %s = %.3f×, server CPU %.2f / %.2f µs per call',
            $on,
            $by[$on]['median'],
            $by[$off]['median'],
            $by[$on]['median'] / $by[$off]['median'],
            number_format($by[$on]['per_second']),
            number_format($by[$off]['per_second']),
            $by[$on]['per_second'] / $by[$off]['per_second'],
            $by[$on]['server_cpu'],
            $by[$off]['server_cpu'],
        );
    }
    return $lines;
}

/**
 * This build against the baseline build (run.sh --baseline), route by
 * route: what a change costs or saves the publisher.
 *
 * @return list<string> one line per pair present in this run
 */
function baselineRatios(array $rows): array
{
    $by = array_column($rows, null, 'name');
    $lines = [];
    foreach (['push ext sendMsg', 'push ext pipelined'] as $now) {
        $before = "{$now}, baseline build";
        if (!isset($by[$now], $by[$before])) {
            continue;
        }
        $lines[] = sprintf(
            'this build / baseline build, %s: median %.2f / %.2f µs = %.3f×, p99 %.2f / %.2f µs, calls/s %s / %s = %.3f×, server CPU %.2f / %.2f µs per call',
            $now,
            $by[$now]['median'],
            $by[$before]['median'],
            $by[$now]['median'] / $by[$before]['median'],
            $by[$now]['p99'],
            $by[$before]['p99'],
            number_format($by[$now]['per_second']),
            number_format($by[$before]['per_second']),
            $by[$now]['per_second'] / $by[$before]['per_second'],
            $by[$now]['server_cpu'],
            $by[$before]['server_cpu'],
        );
    }
    return $lines;
}

/** @return list<string> the cluster routes against the single daemon's, as ratios */
function clusterRatios(array $rows): array
{
    $by = array_column($rows, null, 'name');
    $lines = [];
    $pairs = [
        ['push ext sendMsg', 'push ext sendMsg, cluster'],
        ['push ext pipelined', 'push ext pipelined, cluster'],
        ['push ext sendMsg, recovery off', 'push ext sendMsg, cluster, recovery off'],
        ['push ext pipelined, recovery off', 'push ext pipelined, cluster, recovery off'],
    ];
    foreach ($pairs as [$single, $cluster]) {
        if (!isset($by[$single], $by[$cluster])) {
            continue;
        }
        $lines[] = sprintf(
            '%s / %s: median %.2f / %.2f µs = %.3f×, p99 %.2f / %.2f µs, calls/s %s / %s = %.3f×, server CPU %.2f (three nodes + Redis) / %.2f µs per call',
            $cluster,
            $single,
            $by[$cluster]['median'],
            $by[$single]['median'],
            $by[$cluster]['median'] / $by[$single]['median'],
            $by[$cluster]['p99'],
            $by[$single]['p99'],
            number_format($by[$cluster]['per_second']),
            number_format($by[$single]['per_second']),
            $by[$cluster]['per_second'] / $by[$single]['per_second'],
            $by[$cluster]['server_cpu'],
            $by[$single]['server_cpu'],
        );
    }
    return $lines;
}

function markdown(array $rows, float $floor, array $verdicts, array $context): string
{
    $cpu = 'unknown CPU';
    if (preg_match('/^model name\s*:\s*(.+)$/m', (string) @file_get_contents('/proc/cpuinfo'), $match) === 1) {
        $cpu = trim($match[1]);
    }
    // --all: under taskset, plain nproc counts only the CPUs we may use.
    $cores = (int) trim((string) shell_exec('nproc --all'));
    $load = static fn (array|false $l): string => $l === false ? '?' : sprintf('%.2f, %.2f, %.2f', ...$l);
    $root = escapeshellarg(dirname(__DIR__, 2));
    $commit = trim((string) shell_exec("git -C {$root} rev-parse --short HEAD 2>/dev/null"));
    // What was built is the working tree: say so when it differs from the commit.
    $dirty = rtrim((string) shell_exec("git -C {$root} status --porcelain --untracked-files=no -- push-core push-client php-ext 2>/dev/null"));
    $built = $commit !== '' ? "`{$commit}`" : '?';
    if ($commit !== '' && $dirty !== '') {
        $files = array_map(static fn (string $line): string => '`' . substr($line, 3) . '`', explode("\n", $dirty));
        $built .= ' plus uncommitted changes to ' . implode(', ', $files);
    }

    $out = [START_MARKER, '## PHP publish path', ''];
    $out[] = 'What one PHP process pays to hand one message to a real-time server, by route. '
        . 'Run with `bench/php/run.sh` (it builds the release artifacts and starts every server on loopback '
        . 'or Unix sockets in a temporary directory); this section is rewritten by each run.';
    $out[] = '';
    $out[] = sprintf(
        'Measured %s on %s, %d cores, %s, PHP %s, commit %s. Load average before / after: %s / %s.%s',
        $context['started'],
        $cpu,
        $cores,
        php_uname('s') . ' ' . php_uname('r'),
        PHP_VERSION,
        $built,
        $load($context['load_before']),
        $load($context['load_after']),
        $context['note'] !== '' ? ' ' . $context['note'] : '',
    );
    if ($context['pinned'] !== '') {
        $out[] = '';
        $out[] = "PHP and every server were pinned to CPU {$context['pinned']} (`run.sh --cpus {$context['pinned']}`): "
            . 'each round trip is two context switches on one CPU, with no wake-up of another CPU.';
    }
    $out[] = '';
    $out[] = '| route | what is timed | calls | median µs | p99 µs | calls/s | median × floor | PHP CPU µs/call | server CPU µs/call |';
    $out[] = '|---|---|--:|--:|--:|--:|--:|--:|--:|';
    foreach ($rows as $row) {
        $out[] = sprintf(
            '| %s | %s | %s | %.2f | %.2f | %s | %.2f | %.2f | %.2f |',
            $row['name'],
            str_replace('|', '\\|', $row['what']),
            number_format($row['calls']),
            $row['median'],
            $row['p99'],
            number_format($row['per_second']),
            $row['median'] / $floor,
            $row['php_cpu'],
            $row['server_cpu'],
        );
    }
    $out[] = '';
    $out[] = $context['steadiness'];
    $out[] = '';
    $out[] = 'Targets:';
    $out[] = '';
    foreach ($verdicts as $verdict) {
        $out[] = '- ' . $verdict['line'];
    }
    $out[] = '';
    $ratios = recoveryRatios($rows);
    if ($ratios !== []) {
        $out[] = 'Missed-message recovery (docs/recovery.md), on in the daemon of every push-core row except the '
            . '"recovery off" ones, which publish to a second daemon started with `--recovery-window 0`:';
        $out[] = '';
        foreach ($ratios as $line) {
            $out[] = '- ' . $line;
        }
        $out[] = '';
    }
    $ratios = clusterRatios($rows);
    if ($ratios !== []) {
        $out[] = 'Cluster mode (docs/scaling.md): the "cluster" rows publish to the first of three nodes started with '
            . '`--adapter redis` on a redis-server of their own, recovery on and (the "recovery off" ones) off; their '
            . 'server CPU is the three nodes\' and Redis\'s (see "Several nodes"):';
        $out[] = '';
        foreach ($ratios as $line) {
            $out[] = '- ' . $line;
        }
        $out[] = '';
    }
    $ratios = baselineRatios($rows);
    if ($ratios !== []) {
        $out[] = 'Against the baseline build (`run.sh --baseline PATH`), another build of push-core run with its defaults '
            . 'beside this one, in the same rounds:';
        $out[] = '';
        foreach ($ratios as $line) {
            $out[] = '- ' . $line;
        }
        $out[] = '';
    }
    foreach (whereTheTimeGoes($rows) as $line) {
        $out[] = $line;
    }
    $out[] = 'How it is measured:';
    $out[] = '';
    $out[] = sprintf(
        '- Every call is timed on its own with `hrtime(true)`; median and p99 are over those times. '
        . 'calls/s is calls divided by the wall time of the timed loop. The routes take turns: a warm-up round, '
        . 'then %d rounds that each run every route in %d turns, so load from outside falls on all of them alike. '
        . 'The fast routes do %s calls each, curl with a new handle a tenth of that.',
        $context['rounds'],
        SLICES_PER_ROUND,
        number_format($context['iterations']),
    );
    $out[] = sprintf(
        '- Pipelined rows time each `sendMsg()` between `queue()` and `flush()` (batches of %s); '
        . 'their calls/s includes the flushes, which wait for every reply.',
        number_format($context['batch']),
    );
    $out[] = '- Every route encodes the same small message (`' . json_encode(MESSAGE) . '`) per call, '
        . 'as a site would; the floor sends a ready-made publish frame and encodes nothing.';
    $out[] = '- No browser is connected. A publish to nobody still makes the full round trip: the daemon '
        . 'decodes the frame, validates the JSON, selects the recipients (none) and answers with their number; '
        . 'redis-server likewise answers PUBLISH with 0 subscribers.';
    $out[] = '- The floor is a PHP `fwrite()` plus an `fread()` of a 4-byte reply on a Unix socket to a native echo '
        . 'server (`bench/php/echo-floor.c`: blocking read and write, no decoding): the least a server can do '
        . 'for a request with blocking system calls. Ratios are to it. A server that waits in `poll()` or '
        . '`epoll_wait()` instead answers a little sooner on this VM, as the epoll floor shows.';
    $out[] = '- The epoll floor is the same echo server waiting in `epoll_wait()` on non-blocking sockets, '
        . 'as an event loop (redis-server, tokio) does: one more system call per request than the floor, '
        . 'and on this VM a cheaper wake-up than one blocked in `read()`.';
    $out[] = '- PHP CPU and server CPU are user plus system time per call, from `getrusage()` and '
        . '`/proc/PID/stat` (all threads) over the timed rounds; the kernel\'s work to wake the other side '
        . 'is charged to whoever does the waking. They count in 10 ms clock ticks, so for the pipelined rows, '
        . 'whose rounds last a few tens of milliseconds, they are rough.';
    $out[] = '- (b) publishes what the socket.io Redis emitter publishes to `' . EMITTER_CHANNEL . '`, JSON-encoded '
        . '(no msgpack extension is installed); redis-server runs with `--save \'\' --appendonly no`. '
        . '(c) POSTs to push-core\'s own HTTP publish API, standing in for Centrifugo or Pusher.';
    $out[] = END_MARKER;
    return implode("\n", $out) . "\n";
}

/**
 * The synchronous publish next to the floors, in words, from this run's
 * figures: how much of the gap is the event loop, how much the work done on
 * each side.
 *
 * @return list<string> markdown lines, empty if a route is missing
 */
function whereTheTimeGoes(array $rows): array
{
    $by = array_column($rows, null, 'name');
    foreach (['floor', 'floor, epoll server', 'push ext sendMsg'] as $needed) {
        if (!isset($by[$needed])) {
            return [];
        }
    }
    [$floor, $epoll, $sync] = [$by['floor'], $by['floor, epoll server'], $by['push ext sendMsg']];
    $lines = [
        'Where the synchronous publish\'s time goes, from the figures above:',
        '',
        sprintf(
            '- Its median is %+.2f µs from the floor\'s and %+.2f µs from the epoll floor\'s.',
            $sync['median'] - $floor['median'],
            $sync['median'] - $epoll['median'],
        ),
    ];
    if (isset($by['push-core, raw frame'])) {
        $raw = $by['push-core, raw frame'];
        $lines[] = sprintf(
            '- The daemon\'s share: push-core answered the floor\'s own ready-made frame, with no extension and no encoding, '
            . 'in %.2f µs, %+.2f µs from the floor: decoding the frame, validating the JSON, selecting the recipients and '
            . 'answering, on a runtime worker that waits in `epoll_wait()` as the epoll floor\'s server does.',
            $raw['median'],
            $raw['median'] - $floor['median'],
        );
        $lines[] = sprintf(
            '- The extension\'s share: `sendMsg()` took %+.2f µs more than that raw frame: encoding the message (as '
            . '`json_encode()` does), building the frame, and PHP calling into the extension.',
            $sync['median'] - $raw['median'],
        );
    }
    $lines[] = sprintf(
        '- CPU per call: PHP %.2f µs for `sendMsg()` against %.2f µs for the floor\'s `fwrite()` and `fread()`; the daemon '
        . '%.2f µs against %.2f µs for the blocking echo server and %.2f µs for the epoll one.',
        $sync['php_cpu'],
        $floor['php_cpu'],
        $sync['server_cpu'],
        $floor['server_cpu'],
        $epoll['server_cpu'],
    );
    $lines[] = '';
    return $lines;
}

/**
 * Whether the machine held still: the floor's median in each round. When it
 * moves by more than a quarter, something else was using the CPUs and every
 * figure of the run is suspect.
 */
function steadiness(array $floor): string
{
    $medians = $floor['round_medians'];
    $low = min($medians);
    $high = max($medians);
    $list = implode(', ', array_map(static fn (float $m): string => sprintf('%.2f', $m), $medians));
    return $high > 1.25 * $low
        ? "UNSTEADY: the floor's median moved between rounds ({$list} µs); the machine was busy, rerun when it is quiet."
        : "Steady: the floor's median per round was {$list} µs.";
}

/** Replaces this benchmark's section of $path, or appends it; other sections are left alone. */
function writeMarkdown(string $path, string $section): void
{
    $existing = is_file($path) ? (string) file_get_contents($path) : "# Benchmarks\n";
    $start = strpos($existing, START_MARKER);
    $end = strpos($existing, END_MARKER);
    if ($start !== false && $end !== false && $end > $start) {
        $rest = ltrim(substr($existing, $end + strlen(END_MARKER)), "\n");
        $updated = substr($existing, 0, $start) . $section . ($rest !== '' ? "\n" . $rest : '');
    } else {
        $updated = rtrim($existing, "\n") . "\n\n" . $section;
    }
    // Written whole and renamed, so a concurrent writer of another section
    // never sees half of this one.
    $temporary = $path . '.php-publish.tmp';
    file_put_contents($temporary, $updated);
    rename($temporary, $path);
}

exit(main($argv));

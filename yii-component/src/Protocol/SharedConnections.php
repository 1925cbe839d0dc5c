<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * One connection per daemon per PHP process, shared by every Client: the
 * pure-PHP counterpart of php-ext/src/connections.rs.
 *
 * Opening the socket and doing the HELLO handshake costs more than a
 * publish, so all Client objects with the same socket path and timeout
 * borrow one DaemonConnection. Under php-fpm PHP's statics live for one
 * request, so a pure-PHP site connects once per request that publishes (the
 * extension keeps its connection for the life of the worker); a CLI worker
 * keeps it for its whole life.
 *
 * Sharing has one consequence for pipelining: replies come in queue order,
 * whoever queued them. This class remembers which Client queued each
 * publish, so each Client's flush() returns its own results and only those.
 */
final class SharedConnections
{
    /** @var array<string, DaemonConnection> */
    private static array $connections = [];

    /**
     * Per connection, in queue order: [owner] for a publish written or
     * about to be, [owner, result] for one decided without the daemon.
     *
     * @var array<string, list<array{0: int, 1?: Count|Failure}>>
     */
    private static array $queues = [];

    /** @var array<string, array<int, list<Count|Failure>>> results waiting for their owner's flush() */
    private static array $results = [];

    /** The shared connection for a socket path and timeout, created (not yet connected) on first use. */
    public static function get(string $path, int $timeoutMs): DaemonConnection
    {
        $key = self::key($path, $timeoutMs);
        return self::$connections[$key] ??= new DaemonConnection(
            $path,
            $timeoutMs,
            'push-core-yii/' . Client::VERSION . ' (pure PHP, pid ' . getmypid() . ')',
        );
    }

    /**
     * Queues a publish for $owner; its result comes from that owner's next
     * flush(). Errors known before anything is written are thrown at once.
     *
     * @throws Failure
     */
    public static function queue(string $path, int $timeoutMs, int $owner, Publish $publish): void
    {
        self::get($path, $timeoutMs)->queuePublish($publish);
        self::$queues[self::key($path, $timeoutMs)][] = [$owner];
    }

    /** Records a publish that needed no daemon, keeping its place in the queue. */
    public static function queueDone(string $path, int $timeoutMs, int $owner, Count $result): void
    {
        self::get($path, $timeoutMs);
        self::$queues[self::key($path, $timeoutMs)][] = [$owner, $result];
    }

    /**
     * Writes everything queued on this connection and returns $owner's
     * results, in the order $owner queued them.
     *
     * @return list<Count|Failure>
     */
    public static function flush(string $path, int $timeoutMs, int $owner): array
    {
        $key = self::key($path, $timeoutMs);
        if (!isset(self::$connections[$key])) {
            return [];
        }
        self::collectReplies($key);
        $results = self::$results[$key][$owner] ?? [];
        unset(self::$results[$key][$owner]);
        return $results;
    }

    /** Flushes, keeping the results for their owners, then closes the connection. */
    public static function close(string $path, int $timeoutMs): void
    {
        $key = self::key($path, $timeoutMs);
        if (isset(self::$connections[$key])) {
            self::collectReplies($key);
            self::$connections[$key]->close();
        }
    }

    /** Takes every reply the connection has and hands each to its publish's owner. */
    private static function collectReplies(string $key): void
    {
        $queue = self::$queues[$key] ?? [];
        if ($queue === []) {
            return;
        }
        $connection = self::$connections[$key];
        $replies = $connection->flush();
        if ($connection->queued() > 0) {
            // The connection broke with replies outstanding; closing fails
            // those as "connection lost", so each still gets its result.
            $connection->close();
            array_push($replies, ...$connection->flush());
        }
        foreach ($queue as $slot) {
            $owner = $slot[0];
            $result = \array_key_exists(1, $slot)
                ? $slot[1]
                : (array_shift($replies) ?? Failure::protocol('the client returned fewer results than publishes were queued'));
            self::$results[$key][$owner][] = $result;
        }
        self::$queues[$key] = [];
    }

    private static function key(string $path, int $timeoutMs): string
    {
        return "{$path}\0{$timeoutMs}";
    }
}

<?php

declare(strict_types=1);

namespace PushTests\Support;

use RuntimeException;

/** Loopback ports and temporary directories for the processes a test starts. */
final class Net
{
    /** A loopback port nothing listens on right now. */
    public static function freePort(): int
    {
        $server = stream_socket_server('tcp://127.0.0.1:0', $errno, $error);
        if ($server === false) {
            throw new RuntimeException("cannot find a free port: $error");
        }
        $name = (string) stream_socket_get_name($server, false);
        fclose($server);
        return (int) substr($name, strrpos($name, ':') + 1);
    }

    /** Waits until something accepts connections on the port. */
    public static function waitForPort(int $port, Process $process, float $seconds = 10.0): void
    {
        self::waitUntil(
            static function () use ($port): bool {
                $socket = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $error, 0.2);
                if ($socket === false) {
                    return false;
                }
                fclose($socket);
                return true;
            },
            "port $port to accept connections",
            $process,
            $seconds,
        );
    }

    /** Polls `$condition` until it holds; fails with the process log if not. */
    public static function waitUntil(callable $condition, string $what, ?Process $process = null, float $seconds = 10.0): void
    {
        $deadline = microtime(true) + $seconds;
        while (!$condition()) {
            if ($process !== null && !$process->isRunning()) {
                throw new RuntimeException("the process exited while waiting for $what:\n" . $process->log());
            }
            if (microtime(true) > $deadline) {
                throw new RuntimeException("timed out waiting for $what" . ($process ? ":\n" . $process->log() : ''));
            }
            usleep(10_000);
        }
    }

    public static function tempDir(string $prefix): string
    {
        $dir = sys_get_temp_dir() . '/' . $prefix . bin2hex(random_bytes(4));
        mkdir($dir, 0700);
        return $dir;
    }
}

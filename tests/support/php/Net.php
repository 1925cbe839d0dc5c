<?php

declare(strict_types=1);

namespace PushTests\Harness;

use RuntimeException;

/** Loopback ports, temporary directories, HTTP requests and waiting. */
final class Net
{
    /**
     * How long a test waits for a process to come up or for something to
     * happen: long enough for a loaded CI machine, short enough to fail fast.
     */
    public const WAIT_SECONDS = 10.0;

    /** A loopback port nothing listens on right now. */
    public static function freePort(): int
    {
        $server = stream_socket_server('tcp://127.0.0.1:0', $errno, $error);
        if ($server === false) {
            throw new RuntimeException("cannot find a free port: {$error}");
        }
        $name = (string) stream_socket_get_name($server, false);
        fclose($server);
        return (int) substr($name, strrpos($name, ':') + 1);
    }

    /** Whether something accepts TCP connections on the loopback port. */
    public static function portOpen(int $port): bool
    {
        $socket = @stream_socket_client("tcp://127.0.0.1:{$port}", $errno, $error, 0.2);
        if ($socket === false) {
            return false;
        }
        fclose($socket);
        return true;
    }

    /**
     * Whether a socket listens at the Unix socket path, read from
     * /proc/net/unix rather than by connecting, so that asking is not a
     * connection the listener sees. A file left over from a killed process
     * is not a listening socket.
     */
    public static function unixSocketListening(string $path): bool
    {
        // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 is
        // __SO_ACCEPTCON, set on a socket that listen() was called on.
        foreach (file('/proc/net/unix', FILE_IGNORE_NEW_LINES) ?: [] as $line) {
            $fields = preg_split('/\s+/', trim($line));
            if (\count($fields) >= 8 && $fields[7] === $path && $fields[3] === '00010000') {
                return true;
            }
        }
        return false;
    }

    /** Waits until something accepts connections on the port; fails with the process log if not. */
    public static function waitForPort(int $port, ?Process $process = null, float $seconds = self::WAIT_SECONDS): void
    {
        self::waitUntil(static fn (): bool => self::portOpen($port), "port {$port} to accept connections", $process, $seconds);
    }

    /**
     * Polls $condition until it holds. Fails when $seconds pass, or at once
     * when $process exits, with the process's log either way.
     */
    public static function waitUntil(callable $condition, string $what, ?Process $process = null, float $seconds = self::WAIT_SECONDS): void
    {
        $deadline = microtime(true) + $seconds;
        while (!$condition()) {
            if ($process !== null && !$process->isRunning()) {
                throw new RuntimeException("the process exited while waiting for {$what}; its log:\n" . $process->log());
            }
            if (microtime(true) > $deadline) {
                throw new RuntimeException("timed out after {$seconds} s waiting for {$what}" . ($process ? "; the process's log:\n" . $process->log() : ''));
            }
            usleep(10_000);
        }
    }

    /**
     * A new directory under the system's temporary directory, removed with
     * everything in it when the test process ends.
     */
    public static function tempDir(string $prefix): string
    {
        $dir = sys_get_temp_dir() . '/' . $prefix . bin2hex(random_bytes(4));
        mkdir($dir, 0700, true);
        // Registered from a shutdown function, it runs after every other
        // one, so the processes writing into the directory are stopped first.
        register_shutdown_function(static fn () => register_shutdown_function(static fn () => self::remove($dir)));
        return $dir;
    }

    /**
     * A plain HTTP GET, for checking endpoints the way push-core calls them:
     * redirects are not followed, any status is returned.
     *
     * @param array<string, string> $headers
     * @return array{status: int, headers: list<string>, body: string}
     */
    public static function get(string $url, array $headers = []): array
    {
        $lines = [];
        foreach ($headers as $name => $value) {
            $lines[] = "{$name}: {$value}";
        }
        $context = stream_context_create(['http' => [
            'method' => 'GET',
            'header' => implode("\r\n", $lines),
            'ignore_errors' => true,
            'follow_location' => 0,
            'timeout' => 5,
        ]]);
        $body = file_get_contents($url, false, $context);
        $responseHeaders = $http_response_header ?? [];
        preg_match('{HTTP/\S+ (\d+)}', $responseHeaders[0] ?? '', $match);
        return ['status' => (int) ($match[1] ?? 0), 'headers' => $responseHeaders, 'body' => (string) $body];
    }

    private static function remove(string $path): void
    {
        if (is_dir($path) && !is_link($path)) {
            foreach (scandir($path) ?: [] as $entry) {
                if ($entry !== '.' && $entry !== '..') {
                    self::remove("{$path}/{$entry}");
                }
            }
            @rmdir($path);
        } else {
            @unlink($path);
        }
    }
}

<?php

declare(strict_types=1);

namespace PushYiiTests\Support;

/** Ports, temporary directories and waiting. */
final class Net
{
    /** A loopback port nobody listens on right now. */
    public static function freePort(): int
    {
        $server = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
        if ($server === false) {
            throw new \RuntimeException("cannot find a free port: {$errstr}");
        }
        $name = stream_socket_get_name($server, false);
        fclose($server);
        return (int) substr($name, strrpos($name, ':') + 1);
    }

    public static function tempDir(string $prefix): string
    {
        $dir = sys_get_temp_dir() . '/' . $prefix . bin2hex(random_bytes(4));
        mkdir($dir, 0700, true);
        register_shutdown_function(static function () use ($dir): void {
            foreach (glob("{$dir}/*") ?: [] as $file) {
                @unlink($file);
            }
            @rmdir($dir);
        });
        return $dir;
    }

    /** Polls $ready every 20 ms until it is true; fails after $timeout seconds. */
    public static function waitUntil(callable $ready, string $what, float $timeout = 10.0, ?Process $process = null): void
    {
        $deadline = microtime(true) + $timeout;
        while (!$ready()) {
            if ($process !== null && !$process->isRunning()) {
                throw new \RuntimeException("{$what}: the process exited; its log:\n" . $process->log());
            }
            if (microtime(true) > $deadline) {
                throw new \RuntimeException("{$what} did not happen within {$timeout} s" . ($process ? "; log:\n" . $process->log() : ''));
            }
            usleep(20_000);
        }
    }

    public static function portOpen(int $port): bool
    {
        $socket = @stream_socket_client("tcp://127.0.0.1:{$port}", $errno, $errstr, 0.2);
        if ($socket === false) {
            return false;
        }
        fclose($socket);
        return true;
    }

    /**
     * A plain HTTP GET, for checking endpoints the way push-core calls them.
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
}

<?php

declare(strict_types=1);

namespace PushTests\Support;

/** Runs a separate `php` with the extension under test, for what one process cannot show. */
final class Php
{
    /** The extension the tests load; run.sh exports it. */
    public static function extension(): string
    {
        return getenv('PUSH_EXTENSION') ?: dirname(__DIR__, 3) . '/target/debug/libpush.so';
    }

    /**
     * Runs `php -d extension=... $args...` and returns [exit code, stdout, stderr].
     *
     * @param list<string> $args
     * @return array{int, string, string}
     */
    public static function run(array $args, bool $withExtension = true): array
    {
        $command = [PHP_BINARY];
        if ($withExtension) {
            array_push($command, '-d', 'extension=' . self::extension());
        }
        $process = proc_open(array_merge($command, $args), [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
        $stdout = (string) stream_get_contents($pipes[1]);
        $stderr = (string) stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        return [proc_close($process), $stdout, $stderr];
    }
}

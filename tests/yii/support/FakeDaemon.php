<?php

declare(strict_types=1);

namespace PushYiiTests\Support;

use PushTests\Harness\Net;
use PushTests\Harness\Process;

/**
 * tests/yii/support/fake-daemon.php in a child process: a protocol peer
 * that records every request frame and misbehaves on demand.
 */
final class FakeDaemon
{
    public readonly string $socket;
    private Process $process;

    /** @param string|null $socket where to listen; by default in a new temporary directory */
    public function __construct(string $mode = 'ok', ?string $socket = null)
    {
        $dir = Net::tempDir('push-yii-fake-');
        $this->socket = $socket ?? "{$dir}/fake.sock";
        $this->process = new Process(
            [PHP_BINARY, '-n', __DIR__ . '/fake-daemon.php', $this->socket, $mode],
            "{$dir}/fake.log",
            pipeStdout: true,
        );
        if ($this->process->readLine(5.0) === null) {
            throw new \RuntimeException("the fake daemon did not start:\n" . $this->process->log());
        }
    }

    public function stop(): void
    {
        $this->process->stop();
    }

    /**
     * The request frames received so far (waiting up to $timeout for at
     * least $atLeast of them).
     *
     * @return list<array{kind: int, id: int, hex: string}>
     */
    public function frames(int $atLeast = 0, float $timeout = 3.0): array
    {
        static $seen = [];
        $frames = $seen[$this->socket] ?? [];
        $deadline = microtime(true) + $timeout;
        while (true) {
            $line = $this->process->readLine(\count($frames) >= $atLeast ? 0.05 : max(0.0, $deadline - microtime(true)));
            if ($line === null) {
                break;
            }
            $frames[] = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
        }
        $seen[$this->socket] = $frames;
        return $frames;
    }
}

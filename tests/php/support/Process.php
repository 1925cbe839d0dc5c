<?php

declare(strict_types=1);

namespace PushTests\Support;

use RuntimeException;

/**
 * A child process started without a shell, so its pid is the program's own
 * and signals reach it directly. Output goes to a log file that a failing
 * test can show; stdin stays open as a pipe so a child can notice its parent
 * going away.
 */
final class Process
{
    /** @var resource */
    private $handle;

    /** @var resource */
    private $stdin;

    /** @var resource|null stdout, when it is read as a pipe */
    public $stdout = null;

    public readonly int $pid;

    /**
     * @param list<string> $command
     * @param array<string, string>|null $env
     */
    public function __construct(
        array $command,
        public readonly string $logFile,
        bool $pipeStdout = false,
        ?array $env = null,
    ) {
        $descriptors = [
            0 => ['pipe', 'r'],
            1 => $pipeStdout ? ['pipe', 'w'] : ['file', $logFile, 'a'],
            2 => ['file', $logFile, 'a'],
        ];
        $handle = proc_open($command, $descriptors, $pipes, null, $env);
        if (!is_resource($handle)) {
            throw new RuntimeException('cannot start ' . implode(' ', $command));
        }
        $this->handle = $handle;
        $this->stdin = $pipes[0];
        if ($pipeStdout) {
            $this->stdout = $pipes[1];
            stream_set_blocking($this->stdout, false);
        }
        $this->pid = proc_get_status($handle)['pid'];
    }

    public function isRunning(): bool
    {
        return proc_get_status($this->handle)['running'];
    }

    public function signal(int $signal): void
    {
        if ($this->isRunning()) {
            posix_kill($this->pid, $signal);
        }
    }

    /** Sends `$signal` and waits up to `$seconds` for the exit, then kills. */
    public function stop(int $signal = SIGTERM, float $seconds = 5.0): void
    {
        $this->signal($signal);
        $deadline = microtime(true) + $seconds;
        while ($this->isRunning() && microtime(true) < $deadline) {
            usleep(10_000);
        }
        $this->signal(SIGKILL);
        while ($this->isRunning()) {
            usleep(10_000);
        }
        if (is_resource($this->stdin)) {
            fclose($this->stdin);
        }
        proc_close($this->handle);
    }

    public function log(): string
    {
        return is_file($this->logFile) ? (string) file_get_contents($this->logFile) : '';
    }
}

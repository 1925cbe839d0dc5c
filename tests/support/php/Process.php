<?php

declare(strict_types=1);

namespace PushTests\Harness;

use RuntimeException;

/**
 * A child process started by a test, without a shell, so its pid is the
 * program's own and signals reach it directly. Its output goes to a log
 * file that a failing test can show (or stdout stays a pipe, for
 * readLine()); stdin stays open as a pipe so a child can notice its parent
 * going away.
 *
 * It is stopped by its own pid, never by name, and one still running when
 * the test process ends is stopped then, so a failed test leaves no
 * daemons behind.
 */
final class Process
{
    /**
     * Time a process gets to exit after the stop signal before it is
     * killed: a daemon closing its connections needs well under a second,
     * and a stuck one should not hold the suite up for long.
     */
    public const STOP_GRACE_SECONDS = 5.0;

    /** @var resource */
    private $handle;

    /** @var array<int, resource> */
    private array $pipes;

    public readonly int $pid;

    private bool $running = true;

    /** Bytes read from stdout that do not yet make a whole line. */
    private string $pending = '';

    /**
     * @param list<string> $command
     * @param array<string, string>|null $env null inherits the test's environment
     * @param bool $pipeStdout keep stdout as a pipe (readLine()) instead of the log
     */
    public function __construct(
        array $command,
        public readonly string $logFile,
        ?array $env = null,
        bool $pipeStdout = false,
        ?string $cwd = null,
    ) {
        $descriptors = [
            0 => ['pipe', 'r'],
            1 => $pipeStdout ? ['pipe', 'w'] : ['file', $logFile, 'a'],
            2 => ['file', $logFile, 'a'],
        ];
        $handle = proc_open($command, $descriptors, $pipes, $cwd, $env);
        if (!\is_resource($handle)) {
            throw new RuntimeException('cannot start ' . implode(' ', $command));
        }
        $this->handle = $handle;
        $this->pipes = $pipes;
        $this->pid = proc_get_status($handle)['pid'];
        if ($pipeStdout) {
            stream_set_blocking($pipes[1], false);
        }
        register_shutdown_function(fn () => $this->stop());
    }

    public function isRunning(): bool
    {
        if ($this->running) {
            $this->running = proc_get_status($this->handle)['running'];
        }
        return $this->running;
    }

    public function signal(int $signal): void
    {
        if ($this->isRunning()) {
            posix_kill($this->pid, $signal);
        }
    }

    /**
     * Sends $signal, waits up to $seconds for the exit, then kills, and
     * waits for that. Stopping a stopped process does nothing.
     */
    public function stop(int $signal = SIGTERM, float $seconds = self::STOP_GRACE_SECONDS): void
    {
        if (!\is_resource($this->handle)) {
            return;
        }
        $this->signal($signal);
        $deadline = microtime(true) + $seconds;
        while ($this->isRunning() && microtime(true) < $deadline) {
            usleep(10_000);
        }
        $this->signal(SIGKILL);
        while ($this->isRunning()) {
            usleep(10_000);
        }
        foreach ($this->pipes as $pipe) {
            if (\is_resource($pipe)) {
                fclose($pipe);
            }
        }
        proc_close($this->handle);
    }

    /**
     * The next line of stdout (started with $pipeStdout), or null if none
     * arrives within $timeout seconds; 0 only takes what is already there.
     */
    public function readLine(float $timeout): ?string
    {
        $stdout = $this->pipes[1] ?? null;
        if (!\is_resource($stdout) || get_resource_type($stdout) !== 'stream') {
            throw new RuntimeException('readLine() needs a process started with pipeStdout, and not yet stopped');
        }
        $deadline = microtime(true) + $timeout;
        while (true) {
            $newline = strpos($this->pending, "\n");
            if ($newline !== false) {
                $line = substr($this->pending, 0, $newline);
                $this->pending = substr($this->pending, $newline + 1);
                return $line;
            }
            $chunk = fread($stdout, 65536);
            if ($chunk !== false && $chunk !== '') {
                $this->pending .= $chunk;
                continue;
            }
            $left = $deadline - microtime(true);
            if ($left <= 0 || feof($stdout)) {
                return null;
            }
            $read = [$stdout];
            $write = $except = null;
            @stream_select($read, $write, $except, 0, (int) min($left * 1e6, 50_000));
        }
    }

    public function log(): string
    {
        return is_file($this->logFile) ? (string) file_get_contents($this->logFile) : '';
    }
}

<?php

declare(strict_types=1);

namespace PushYiiTests\Support;

/**
 * A child process started by a test, with its output in a log file. It is
 * stopped by its own pid (never by name), and a process that is still
 * running when the test process ends is stopped then.
 */
final class Process
{
    /** @var resource */
    private $handle;
    /** @var array<int, resource> */
    private array $pipes;
    public readonly int $pid;
    private bool $running = true;

    /**
     * @param list<string> $command
     * @param array<string, string>|null $env
     * @param bool $pipeStdout keep stdout as a pipe (readLine()) instead of the log
     */
    public function __construct(array $command, public readonly string $logFile, ?array $env = null, bool $pipeStdout = false, ?string $cwd = null)
    {
        $spec = [
            0 => ['pipe', 'r'],
            1 => $pipeStdout ? ['pipe', 'w'] : ['file', $logFile, 'a'],
            2 => ['file', $logFile, 'a'],
        ];
        $handle = proc_open($command, $spec, $pipes, $cwd, $env);
        if ($handle === false) {
            throw new \RuntimeException('cannot start ' . implode(' ', $command));
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
        if (!$this->running) {
            return false;
        }
        $this->running = proc_get_status($this->handle)['running'];
        return $this->running;
    }

    public function signal(int $signal): void
    {
        if ($this->isRunning()) {
            posix_kill($this->pid, $signal);
        }
    }

    /** Stops the process (SIGTERM, then SIGKILL after 3 s) and waits for it. */
    public function stop(int $signal = SIGTERM): void
    {
        if (!$this->running) {
            return;
        }
        $this->signal($signal);
        $deadline = microtime(true) + 3;
        while ($this->isRunning() && microtime(true) < $deadline) {
            usleep(10_000);
        }
        if ($this->isRunning()) {
            posix_kill($this->pid, SIGKILL);
            while ($this->isRunning()) {
                usleep(10_000);
            }
        }
        foreach ($this->pipes as $pipe) {
            if (\is_resource($pipe)) {
                fclose($pipe);
            }
        }
        proc_close($this->handle);
        $this->running = false;
    }

    /** Bytes read from stdout that do not yet make a whole line. */
    private string $pending = '';

    /** The next line of stdout, or null if none arrives within $timeout seconds. */
    public function readLine(float $timeout): ?string
    {
        $deadline = microtime(true) + $timeout;
        while (true) {
            $newline = strpos($this->pending, "\n");
            if ($newline !== false) {
                $line = substr($this->pending, 0, $newline);
                $this->pending = substr($this->pending, $newline + 1);
                return $line;
            }
            $chunk = fread($this->pipes[1], 65536);
            if ($chunk !== false && $chunk !== '') {
                $this->pending .= $chunk;
                continue;
            }
            $left = $deadline - microtime(true);
            if ($left <= 0 || feof($this->pipes[1])) {
                return null;
            }
            $read = [$this->pipes[1]];
            $write = $except = null;
            @stream_select($read, $write, $except, 0, (int) min($left * 1e6, 50_000));
        }
    }

    public function log(): string
    {
        return is_file($this->logFile) ? (string) file_get_contents($this->logFile) : '';
    }
}

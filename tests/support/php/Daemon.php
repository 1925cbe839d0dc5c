<?php

declare(strict_types=1);

namespace PushTests\Harness;

/**
 * The real push-core daemon, on a publish socket in its own temporary
 * directory and a free loopback port. Browsers connect to url(); PHP
 * publishes on $socket.
 */
final class Daemon
{
    public readonly string $socket;
    public readonly int $port;
    private Process $process;

    /**
     * @param list<string> $namespaces served besides "/"
     * @param string|null $authUrl the site's auth endpoint (--auth-url)
     * @param list<string> $extraArgs more `push-core serve` flags
     * @param array<string, string> $env variables set for the daemon
     */
    public function __construct(
        private readonly array $namespaces,
        private readonly ?string $authUrl = null,
        private readonly array $extraArgs = [],
        private readonly array $env = [],
    ) {
        $dir = Net::tempDir('push-test-daemon-');
        $this->socket = "{$dir}/push.sock";
        $this->port = Net::freePort();
        $this->start();
    }

    /** The daemon under test: $PUSH_CORE_BIN, which the run scripts set, else the debug build. */
    public static function binary(): string
    {
        return getenv('PUSH_CORE_BIN') ?: \dirname(__DIR__, 3) . '/target/debug/push-core';
    }

    public function url(): string
    {
        return "http://127.0.0.1:{$this->port}";
    }

    /**
     * Starts the daemon (again, after stop() or kill()) and waits until both
     * of its sockets listen. After kill() the old socket file is still
     * there, as after a crash: the daemon must replace it, and the wait is
     * for a listening socket, not for the file.
     */
    public function start(): void
    {
        $command = [self::binary(), 'serve', '--socket', $this->socket, '--listen', "127.0.0.1:{$this->port}"];
        foreach ($this->namespaces as $namespace) {
            array_push($command, '--namespace', $namespace);
        }
        if ($this->authUrl !== null) {
            array_push($command, '--auth-url', $this->authUrl);
        }
        $command = array_merge($command, $this->extraArgs);
        $this->process = new Process($command, \dirname($this->socket) . '/daemon.log', env: array_merge(self::cleanEnv(), $this->env));
        Net::waitForPort($this->port, $this->process);
        Net::waitUntil(fn (): bool => Net::unixSocketListening($this->socket), 'the publish socket to listen', $this->process);
    }

    /** Kills the daemon the hard way, as a crash or an OOM kill would. */
    public function kill(): void
    {
        $this->process->stop(SIGKILL);
    }

    public function stop(): void
    {
        $this->process->stop();
    }

    /** Freezes the daemon: it keeps its sockets but answers nothing. */
    public function pause(): void
    {
        $this->process->signal(SIGSTOP);
        // The signal is asynchronous: wait until the kernel shows it stopped.
        Net::waitUntil(
            fn (): bool => preg_match('/^\d+ \(.*\) T /', (string) @file_get_contents("/proc/{$this->process->pid}/stat")) === 1,
            'the daemon to stop',
        );
    }

    public function resume(): void
    {
        $this->process->signal(SIGCONT);
    }

    public function log(): string
    {
        return $this->process->log();
    }

    /**
     * The inherited environment without PUSH_CORE_* variables, so the
     * developer's shell cannot change what a test sees.
     *
     * @return array<string, string>
     */
    private static function cleanEnv(): array
    {
        return array_filter(
            getenv(),
            static fn (string $key): bool => !str_starts_with($key, 'PUSH_CORE_'),
            ARRAY_FILTER_USE_KEY,
        );
    }
}

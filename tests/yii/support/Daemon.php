<?php

declare(strict_types=1);

namespace PushYiiTests\Support;

/**
 * The real push-core daemon, on a publish socket in its own temporary
 * directory and a free loopback port.
 */
final class Daemon
{
    public readonly string $socket;
    public readonly int $port;
    private Process $process;

    /** @param list<string> $namespaces served besides "/" */
    public function __construct(
        private readonly array $namespaces = ['/message_namespace'],
        private readonly ?string $authUrl = null,
    ) {
        $dir = Net::tempDir('push-yii-test-');
        $this->socket = "{$dir}/push.sock";
        $this->port = Net::freePort();
        $this->start();
    }

    public static function binary(): string
    {
        return getenv('PUSH_CORE_BIN') ?: \dirname(__DIR__, 3) . '/target/debug/push-core';
    }

    public function url(): string
    {
        return "http://127.0.0.1:{$this->port}";
    }

    /** Starts the daemon and waits until both of its sockets accept. */
    public function start(): void
    {
        $command = [self::binary(), 'serve', '--socket', $this->socket, '--listen', "127.0.0.1:{$this->port}"];
        foreach ($this->namespaces as $namespace) {
            array_push($command, '--namespace', $namespace);
        }
        if ($this->authUrl !== null) {
            // No caching: each test's connect asks the auth action again.
            array_push($command, '--auth-url', $this->authUrl, '--auth-cache-ttl', '0');
        }
        $env = array_filter(getenv(), static fn (string $k): bool => !str_starts_with($k, 'PUSH_CORE_'), ARRAY_FILTER_USE_KEY);
        $this->process = new Process($command, \dirname($this->socket) . '/daemon.log', $env);
        Net::waitUntil(fn (): bool => Net::portOpen($this->port), 'push-core listening', 10, $this->process);
        Net::waitUntil(fn (): bool => file_exists($this->socket), 'the publish socket', 10, $this->process);
    }

    /** Kills the daemon the hard way, as a crash would. */
    public function kill(): void
    {
        $this->process->stop(SIGKILL);
        @unlink($this->socket);
    }

    public function stop(): void
    {
        $this->process->stop();
    }

    /** Freezes the daemon: it keeps its sockets but answers nothing. */
    public function pause(): void
    {
        $this->process->signal(SIGSTOP);
    }

    public function resume(): void
    {
        $this->process->signal(SIGCONT);
    }

    public function log(): string
    {
        return $this->process->log();
    }
}

<?php

declare(strict_types=1);

namespace PushYiiTests\Support;

/**
 * Browsers, played by the real socket.io-client v4 in node
 * (tests/support/socketio-receiver.mjs): each connects to a namespace with its own
 * cookies, and every event it receives comes back here as a JSON line.
 */
final class Browsers
{
    private Process $process;
    /** @var list<array<string, mixed>> lines read and not yet consumed */
    private array $lines = [];

    /**
     * @param list<array{name: string, namespace: string, cookie?: string}> $clients
     */
    public function __construct(string $url, array $clients, private readonly float $timeout = 10.0)
    {
        $dir = Net::tempDir('push-yii-browsers-');
        $node = getenv('NODE') ?: 'node';
        $this->process = new Process(
            [$node, __DIR__ . '/../../support/socketio-receiver.mjs', $url, json_encode($clients)],
            "{$dir}/receiver.log",
            null,
            true,
            \dirname(__DIR__, 2),
        );
        foreach ($clients as $client) {
            $this->waitFor(static fn (array $l): bool => $l['client'] === $client['name'] && \in_array($l['type'], ['connect', 'connect_error'], true));
        }
    }

    public function close(): void
    {
        $this->process->stop();
    }

    /**
     * Waits for a line matching $match and removes it from the backlog.
     *
     * @param callable(array<string, mixed>): bool $match
     * @return array<string, mixed>
     */
    public function waitFor(callable $match, ?float $timeout = null): array
    {
        $deadline = microtime(true) + ($timeout ?? $this->timeout);
        while (true) {
            foreach ($this->lines as $index => $line) {
                if ($match($line)) {
                    unset($this->lines[$index]);
                    return $line;
                }
            }
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                throw new \RuntimeException('expected browser event did not arrive; seen: ' . json_encode(array_values($this->lines)) . "\nreceiver log:\n" . $this->process->log());
            }
            $raw = $this->process->readLine(min($left, 0.2));
            if ($raw !== null) {
                $this->lines[] = json_decode($raw, true, 512, JSON_THROW_ON_ERROR);
            }
        }
    }

    /**
     * The next event $client receives called $event.
     *
     * @return array<string, mixed> with "data" (decoded) and "json" (as received)
     */
    public function event(string $client, string $event, ?float $timeout = null): array
    {
        return $this->waitFor(
            static fn (array $l): bool => $l['type'] === 'event' && $l['client'] === $client && $l['event'] === $event,
            $timeout,
        );
    }

    /**
     * Every event received within $quietFor seconds, for "nothing arrived"
     * checks. Consumes them.
     *
     * @return list<array<string, mixed>>
     */
    public function drain(float $quietFor = 0.5): array
    {
        $deadline = microtime(true) + $quietFor;
        while (($left = $deadline - microtime(true)) > 0) {
            $raw = $this->process->readLine($left);
            if ($raw !== null) {
                $this->lines[] = json_decode($raw, true, 512, JSON_THROW_ON_ERROR);
            }
        }
        $events = array_values(array_filter($this->lines, static fn (array $l): bool => $l['type'] === 'event'));
        $this->lines = array_values(array_filter($this->lines, static fn (array $l): bool => $l['type'] !== 'event'));
        return $events;
    }
}

<?php

declare(strict_types=1);

namespace PushTests\Harness;

use RuntimeException;

/**
 * Browsers, played by the real socket.io-client v4 (or 2.5.0, for old
 * pages) in Node (tests/support/socketio-receiver.mjs): each connects to a namespace with
 * its own cookies, and everything it sees (connects, connect errors,
 * events) comes back here as a JSON line, kept in the order it arrived.
 * The daemon's push:recovery status (first after each connect) is kept
 * apart from the events: recovery() reads it.
 *
 * Tests look at that record in one of two ways:
 * - what has arrived so far: waitForConnects(), waitForEvent(), received(),
 *   receivedJson(). These only read the record.
 * - expectations in order: event() and waitFor() take the next matching
 *   line off the record, and drain() takes every event nobody took yet, so
 *   "nothing else arrived" is `drain() === []`. These consume.
 */
final class Browsers
{
    private Process $process;

    /** @var list<array<string, mixed>> every line received, in order */
    private array $lines = [];

    /** @var array<int, true> indexes of $lines that event(), waitFor() or drain() took */
    private array $taken = [];

    /**
     * Starts the clients and waits until each has connected.
     *
     * @param list<array{name: string, namespace: string, cookie?: string, transport?: string, offset?: string, client?: string, events?: list<string>}> $clients
     *        offset: the recovery offset the client connects with (auth: {offset});
     *        client: '2.5.0' for socket.io-client 2.5.0, which records only `events`
     * @param float $timeout how long each wait may take
     */
    public function __construct(string $url, array $clients, private readonly float $timeout = Net::WAIT_SECONDS)
    {
        $this->process = new Process(
            [getenv('NODE') ?: 'node', \dirname(__DIR__) . '/socketio-receiver.mjs', $url, json_encode($clients, JSON_THROW_ON_ERROR)],
            Net::tempDir('push-test-browsers-') . '/receiver.log',
            pipeStdout: true,
        );
        $this->waitForConnects(array_column($clients, 'name'), 1);
    }

    public function stop(): void
    {
        $this->process->stop();
    }

    /**
     * Waits until each named client has connected $times times in all
     * (2 after one reconnect).
     *
     * @param list<string> $names
     */
    public function waitForConnects(array $names, int $times): void
    {
        foreach ($names as $name) {
            $this->waitUntil(
                fn (): bool => \count($this->matching(static fn (array $l): bool => $l['type'] === 'connect' && $l['client'] === $name)) >= $times,
                "{$name} to connect ({$times})",
            );
        }
    }

    /** Waits for the first $event at $client and returns its payload. */
    public function waitForEvent(string $client, string $event): mixed
    {
        $this->waitUntil(fn (): bool => $this->received($client, $event) !== [], "{$client} to receive '{$event}'");
        return $this->received($client, $event)[0];
    }

    /**
     * Payloads of $event that $client has received so far, in order.
     *
     * @return list<mixed>
     */
    public function received(string $client, string $event): array
    {
        return array_column($this->events($client, $event), 'data');
    }

    /**
     * The JSON texts of $event payloads $client received: what the
     * socket.io client decoded, re-encoded by Node's JSON.stringify. Unlike
     * the decoded PHP arrays, these keep `{}` apart from `[]`.
     *
     * @return list<string>
     */
    public function receivedJson(string $client, string $event): array
    {
        return array_column($this->events($client, $event), 'json');
    }

    /**
     * Takes the next push:recovery status $client receives, waiting for it.
     *
     * @return array{recovered: bool, replayed: int, offset: string}
     */
    public function recovery(string $client): array
    {
        return $this->waitFor(static fn (array $l): bool => $l['type'] === 'recovery' && $l['client'] === $client)['data'];
    }

    /**
     * Takes the next event $client receives called $event, waiting for it.
     *
     * @return array<string, mixed> with "data" (decoded), "json" (as received)
     *         and "offset" (the recovery offset it came with, when recovery is on)
     */
    public function event(string $client, string $event, ?float $timeout = null): array
    {
        return $this->waitFor(
            static fn (array $l): bool => $l['type'] === 'event' && $l['client'] === $client && $l['event'] === $event,
            $timeout,
        );
    }

    /**
     * Takes the first line matching $match that was not taken yet, waiting
     * for it.
     *
     * @param callable(array<string, mixed>): bool $match
     * @return array<string, mixed>
     */
    private function waitFor(callable $match, ?float $timeout = null): array
    {
        $found = null;
        $this->waitUntil(
            function () use ($match, &$found): bool {
                foreach ($this->lines as $index => $line) {
                    if (!isset($this->taken[$index]) && $match($line)) {
                        $this->taken[$index] = true;
                        $found = $line;
                        return true;
                    }
                }
                return false;
            },
            'a line the test expects',
            $timeout,
        );
        return $found;
    }

    /**
     * Takes every event not taken yet, after listening for $quietFor more
     * seconds: for "nothing (else) arrived" checks.
     *
     * @return list<array<string, mixed>>
     */
    public function drain(float $quietFor = 0.5): array
    {
        $deadline = microtime(true) + $quietFor;
        while (($left = $deadline - microtime(true)) > 0) {
            $this->read($left);
        }
        $events = [];
        foreach ($this->lines as $index => $line) {
            if (!isset($this->taken[$index]) && $line['type'] === 'event') {
                $this->taken[$index] = true;
                $events[] = $line;
            }
        }
        return $events;
    }

    /**
     * The event lines of $event at $client so far, taken or not.
     *
     * @return list<array<string, mixed>>
     */
    private function events(string $client, string $event): array
    {
        $this->read(0.0);
        return $this->matching(
            static fn (array $l): bool => $l['type'] === 'event' && $l['client'] === $client && $l['event'] === $event,
        );
    }

    /**
     * @param callable(array<string, mixed>): bool $match
     * @return list<array<string, mixed>>
     */
    private function matching(callable $match): array
    {
        return array_values(array_filter($this->lines, $match));
    }

    /** Reads lines until $condition holds; fails with everything seen when $timeout passes or Node exits. */
    private function waitUntil(callable $condition, string $what, ?float $timeout = null): void
    {
        $deadline = microtime(true) + ($timeout ?? $this->timeout);
        $this->read(0.0);
        while (!$condition()) {
            $left = $deadline - microtime(true);
            if ($left <= 0 || !$this->process->isRunning()) {
                throw new RuntimeException(
                    "timed out waiting for {$what}; the browsers saw:\n"
                    . implode("\n", array_map(static fn (array $l): string => json_encode($l), $this->lines))
                    . "\nthe receiver's log:\n" . $this->process->log(),
                );
            }
            $this->read(min($left, 0.1));
        }
    }

    /** Records the lines that arrive within $seconds (0: those already there). */
    private function read(float $seconds): void
    {
        $line = $this->process->readLine($seconds);
        while ($line !== null) {
            $this->lines[] = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
            $line = $this->process->readLine(0.0);
        }
    }
}

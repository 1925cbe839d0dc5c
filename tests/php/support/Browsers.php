<?php

declare(strict_types=1);

namespace PushTests\Support;

use RuntimeException;

/**
 * socket.io clients in Node (tests/support/socketio-receiver.mjs) that record what they
 * receive. Each client is named and logs in through a cookie that the test
 * auth site (fixtures/auth.php) turns into a user and rooms.
 */
final class Browsers
{
    /** Long enough for a loaded CI machine, short enough to fail fast. */
    public const WAIT_SECONDS = 10.0;

    private Process $process;
    private string $buffer = '';

    /** @var list<array<string, mixed>> every line received, in order */
    private array $lines = [];

    /**
     * @param array<string, array{namespace?: string, user?: string|int, rooms?: list<string>}> $clients
     */
    public function __construct(Daemon $daemon, array $clients)
    {
        $specs = [];
        foreach ($clients as $name => $client) {
            $cookie = [];
            if (isset($client['user'])) {
                $cookie[] = 'user=' . rawurlencode((string) $client['user']);
            }
            if (isset($client['rooms'])) {
                $cookie[] = 'rooms=' . rawurlencode(implode(',', $client['rooms']));
            }
            $specs[] = [
                'name' => $name,
                'namespace' => $client['namespace'] ?? '/ns',
                'cookie' => implode('; ', $cookie),
            ];
        }
        $this->process = new Process(
            ['node', __DIR__ . '/../../support/socketio-receiver.mjs', $daemon->url(), json_encode($specs, JSON_THROW_ON_ERROR)],
            dirname($daemon->socket) . '/browsers.log',
            pipeStdout: true,
        );
        $this->waitForConnects(array_keys($clients), 1);
    }

    /**
     * Waits until each named client has connected `$times` times in all
     * (2 after one reconnect).
     *
     * @param list<string> $names
     */
    public function waitForConnects(array $names, int $times): void
    {
        foreach ($names as $name) {
            $this->waitFor(
                fn (): bool => count($this->matching('connect', $name)) >= $times,
                "$name to connect ($times)",
            );
        }
    }

    /** Waits for the first `$event` at `$client` and returns its payload. */
    public function waitForEvent(string $client, string $event): mixed
    {
        $this->waitFor(fn (): bool => $this->received($client, $event) !== [], "$client to receive '$event'");
        return $this->received($client, $event)[0];
    }

    /**
     * Payloads of `$event` that `$client` has received so far, in order.
     *
     * @return list<mixed>
     */
    public function received(string $client, string $event): array
    {
        $this->read(0.0);
        return array_values(array_map(
            static fn (array $line): mixed => $line['data'],
            array_filter(
                $this->matching('event', $client),
                static fn (array $line): bool => $line['event'] === $event,
            ),
        ));
    }

    /**
     * The JSON texts of `$event` payloads `$client` received: what the
     * socket.io client decoded, re-encoded by Node's JSON.stringify. Unlike
     * the decoded PHP arrays, these keep `{}` apart from `[]`.
     *
     * @return list<string>
     */
    public function receivedJson(string $client, string $event): array
    {
        $this->read(0.0);
        return array_values(array_map(
            static fn (array $line): string => $line['json'],
            array_filter(
                $this->matching('event', $client),
                static fn (array $line): bool => $line['event'] === $event,
            ),
        ));
    }

    public function stop(): void
    {
        $this->process->stop();
    }

    /** @return list<array<string, mixed>> */
    private function matching(string $type, string $client): array
    {
        return array_values(array_filter(
            $this->lines,
            static fn (array $line): bool => $line['type'] === $type && $line['client'] === $client,
        ));
    }

    private function waitFor(callable $condition, string $what): void
    {
        $deadline = microtime(true) + self::WAIT_SECONDS;
        $this->read(0.0);
        while (!$condition()) {
            $left = $deadline - microtime(true);
            if ($left <= 0 || !$this->process->isRunning()) {
                throw new RuntimeException(
                    "timed out waiting for $what; the browsers saw:\n"
                    . implode("\n", array_map(static fn ($l) => json_encode($l), $this->lines))
                    . "\n" . $this->process->log(),
                );
            }
            $this->read(min($left, 0.1));
        }
    }

    /** Reads whatever lines arrive within `$seconds`. */
    private function read(float $seconds): void
    {
        $read = [$this->process->stdout];
        $write = $except = null;
        $micro = (int) ($seconds * 1_000_000);
        if (@stream_select($read, $write, $except, intdiv($micro, 1_000_000), $micro % 1_000_000) > 0) {
            $this->buffer .= (string) fread($this->process->stdout, 1 << 20);
        }
        while (($end = strpos($this->buffer, "\n")) !== false) {
            $this->lines[] = json_decode(substr($this->buffer, 0, $end), true, 512, JSON_THROW_ON_ERROR);
            $this->buffer = substr($this->buffer, $end + 1);
        }
    }
}

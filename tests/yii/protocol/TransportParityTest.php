<?php

declare(strict_types=1);

namespace PushYiiTests\Protocol;

use PushCore\Yii\Transport;
use PushYiiTests\Support\FakeDaemon;
use PushYiiTests\TestCase;

/**
 * The extension, FFI and pure-PHP transports are interchangeable: the same
 * calls put the same bytes on the socket, the browser receives the same
 * JSON, and every failure is the same PushException with the same code and
 * message. Transports that are not built here are skipped, with the reason.
 */
final class TransportParityTest extends TestCase
{
    /** @return list<string> the transports that can run here, pure PHP first */
    private function availableTransports(): array
    {
        $available = [Transport::PHP];
        foreach ([Transport::EXTENSION, Transport::FFI] as $transport) {
            try {
                $this->requireTransport($transport);
                $available[] = $transport;
            } catch (\PHPUnit\Framework\SkippedTestError) {
                $this->addWarningOnce($transport);
            }
        }
        return $available;
    }

    private function addWarningOnce(string $transport): void
    {
        // Recorded so the run shows a missing transport instead of hiding it.
        fwrite(STDERR, "\n[TransportParityTest] the {$transport} transport is not available here; compared without it\n");
    }

    private function client(string $transport, string $socket, string $namespace = self::NS, ?int $timeoutMs = 1000): object
    {
        return Transport::create($transport, $socket, $namespace, $timeoutMs, self::ffiLibrary(), self::ffiHeader());
    }

    /** The message of the tests: nested, unicode, empty array and object, JsonSerializable. */
    private static function message(): array
    {
        return [
            'title' => 'Snow ☃ in Zürich',
            'slash' => '</script>',
            'nested' => ['list' => [1, 2.5, true, null], 'map' => ['b' => 1, 'a' => 2]],
            'empty_array' => [],
            'empty_object' => new \stdClass(),
            'serializable' => new class () implements \JsonSerializable {
                public function jsonSerialize(): mixed
                {
                    return ['via' => 'jsonSerialize'];
                }
            },
        ];
    }

    public function testEveryTransportWritesTheSameFrames(): void
    {
        $recorded = [];
        foreach ($this->availableTransports() as $transport) {
            $fake = new FakeDaemon('ok');
            $client = $this->client($transport, $fake->socket);
            $results = [
                $client->sendMsg('news', self::message(), [7]),
                $client->sendToUser(42, 'private', 'text'),
                $client->sendToUsers([42, 'bob'], 'many', 1.5),
                $client->sendToRoom(['group:0', 5], 'room', null),
                $client->sendToRoom('lobby', 'room', false),
                $client->isOnline(42),
            ];
            // Everything but the HELLO, whose client name tells the transports apart.
            $frames = array_values(array_filter($fake->frames(7), static fn (array $f): bool => $f['kind'] !== 1));
            $recorded[$transport] = ['results' => $results, 'frames' => array_column($frames, 'hex')];
            $fake->stop();
        }

        $this->assertCount(6, $recorded[Transport::PHP]['frames']);
        $this->assertSame([7, 7, 7, 7, 7, true], $recorded[Transport::PHP]['results']);
        foreach ($recorded as $transport => $record) {
            $this->assertSame($recorded[Transport::PHP], $record, "{$transport} differs from the pure-PHP client");
        }
    }

    public function testEveryTransportDeliversTheSameJson(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        // The receiver reports JSON.stringify() of what socket.io decoded.
        $expected = json_encode(self::message(), JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES);
        foreach ($this->availableTransports() as $transport) {
            $client = $this->client($transport, self::$daemon->socket);
            $this->assertSame(1, $client->sendToUser(42, "from-{$transport}", self::message()));
            $this->assertSame($expected, $browsers->event('alice', "from-{$transport}")['json'], $transport);
        }
    }

    /** @return array<string, array{0: int, 1: callable(self, string): array{0: string, 1: callable}}> */
    public function failures(): array
    {
        $real = static fn (self $test): string => self::$daemon->socket;
        return [
            'daemon not running' => [\PushException::UNREACHABLE, static fn (self $t): array => [self::deadSocket(), static fn ($c) => $c->sendMsg('e', 1)]],
            'namespace not served' => [\PushException::UNKNOWN_NAMESPACE, static fn (self $t): array => [$real($t), static fn ($c) => $c->setNamespace('/nope')->sendMsg('e', 1)]],
            'message too large' => [\PushException::FRAME_TOO_LARGE, static fn (self $t): array => [$real($t), static fn ($c) => $c->sendMsg('e', str_repeat('x', 2 << 20))]],
            'reserved event name' => [\PushException::INVALID_ARGUMENT, static fn (self $t): array => [$real($t), static fn ($c) => $c->sendMsg('connect', 1)]],
            'message not encodable' => [\PushException::ENCODING, static fn (self $t): array => [$real($t), static fn ($c) => $c->sendMsg('e', ['x' => NAN])]],
            'invalid utf-8 in the message' => [\PushException::ENCODING, static fn (self $t): array => [$real($t), static fn ($c) => $c->sendToUser(1, 'e', "\xff")]],
            'user of a wrong type' => [\PushException::INVALID_ARGUMENT, static fn (self $t): array => [$real($t), static fn ($c) => $c->sendToUser(1.5, 'e', 1)]],
            'excepted user of a wrong type' => [\PushException::INVALID_ARGUMENT, static fn (self $t): array => [$real($t), static fn ($c) => $c->sendMsg('e', 1, [null])]],
            'daemon silent' => [\PushException::TIMEOUT, 'silent'],
            'daemon closes mid-request' => [\PushException::CONNECTION_LOST, 'close-after-request'],
            'daemon speaks another version' => [\PushException::VERSION_MISMATCH, 'old-version'],
            'daemon answers garbage' => [\PushException::PROTOCOL, 'garbage'],
            'frame over the announced limit' => [\PushException::FRAME_TOO_LARGE, 'small-frames'],
        ];
    }

    /**
     * @dataProvider failures
     * @param (callable(self): array{0: string, 1: callable})|string $scenario a
     *        real-daemon scenario, or the mode of a fake daemon
     */
    public function testEveryTransportFailsTheSameWay(int $code, callable|string $scenario): void
    {
        $seen = [];
        // One socket path for every transport, since the messages name it.
        $fakeSocket = \PushYiiTests\Support\Net::tempDir('push-yii-fake-') . '/fake.sock';
        foreach ($this->availableTransports() as $transport) {
            $fake = null;
            if (\is_string($scenario)) {
                $fake = new FakeDaemon($scenario, $fakeSocket);
                [$socket, $call] = [$fake->socket, static fn ($c) => $c->sendToUser(42, 'e', str_repeat('y', 100))];
            } else {
                [$socket, $call] = $scenario($this);
            }
            $client = $this->client($transport, $socket, self::NS, 300);
            $started = microtime(true);
            try {
                $call($client);
                $seen[$transport] = 'no exception';
            } catch (\Throwable $error) {
                $seen[$transport] = [\get_class($error), $error->getCode(), $error->getMessage()];
            } finally {
                $fake?->stop();
            }
            $this->assertLessThan(2.0, microtime(true) - $started, "{$transport} took too long to fail");
        }

        $this->assertIsArray($seen[Transport::PHP], 'the pure-PHP client did not throw');
        $this->assertSame(\PushException::class, $seen[Transport::PHP][0]);
        $this->assertSame($code, $seen[Transport::PHP][1], $seen[Transport::PHP][2]);
        foreach ($seen as $transport => $outcome) {
            $this->assertSame($seen[Transport::PHP], $outcome, "{$transport} fails differently from the pure-PHP client");
        }
    }

    public function testTheTimeoutMessageNamesTheTimeout(): void
    {
        $fake = new FakeDaemon('silent');
        try {
            $this->client(Transport::PHP, $fake->socket, self::NS, 250)->ping();
            $this->fail('no exception');
        } catch (\PushException $error) {
            $this->assertSame("push-core at {$fake->socket} did not answer within 250ms; the daemon may be overloaded or stuck", $error->getMessage());
        } finally {
            $fake->stop();
        }
    }
}

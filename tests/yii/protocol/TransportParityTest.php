<?php

declare(strict_types=1);

namespace PushYiiTests\Protocol;

use PushCore\Yii\Transport;
use PushTests\Harness\Net;
use PushYiiTests\Support\FakeDaemon;
use PushYiiTests\TestCase;

/**
 * The extension, FFI and pure-PHP transports are interchangeable: the same
 * calls put the same bytes on the socket, the browser receives the same
 * JSON, and every failure is the same PushException with the same code and
 * message.
 *
 * Each test runs once per native transport and compares it with the
 * pure-PHP client, whose own results are checked first. A native transport
 * that is not built here makes the test skipped, saying what to build (the
 * pure-PHP checks still ran), and failed in CI, which builds every
 * transport: a comparison of the pure-PHP client with itself must never
 * pass for parity.
 */
final class TransportParityTest extends TestCase
{
    /** @return array<string, array{string}> the transports compared with the pure-PHP client */
    public function nativeTransports(): array
    {
        return [
            'extension' => [Transport::EXTENSION],
            'ffi' => [Transport::FFI],
        ];
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

    /** @dataProvider nativeTransports */
    public function testEveryTransportWritesTheSameFrames(string $transport): void
    {
        $php = $this->recordFrames(Transport::PHP);
        $this->assertCount(8, $php['frames']);
        $this->assertSame([7, 7, 7, 7, 7, true, 'fake-epoch-7', 'fake-epoch-7'], $php['results']);

        $this->requireTransport($transport);
        $this->assertSame($php, $this->recordFrames($transport), "{$transport} differs from the pure-PHP client");
    }

    /**
     * What the test's calls return over $transport, and the request frames
     * they write (as hex) to a fake daemon.
     *
     * @return array{results: list<mixed>, frames: list<string>}
     */
    private function recordFrames(string $transport): array
    {
        $fake = new FakeDaemon('ok');
        try {
            $client = $this->client($transport, $fake->socket);
            $results = [
                $client->sendMsg('news', self::message(), [7]),
                $client->sendToUser(42, 'private', 'text'),
                $client->sendToUsers([42, 'bob'], 'many', 1.5),
                $client->sendToRoom(['group:0', 5], 'room', null),
                $client->sendToRoom('lobby', 'room', false),
                $client->isOnline(42),
                $client->position(),
                $client->position('/elsewhere'),
            ];
            // Everything but the HELLO, whose client name tells the transports apart.
            $frames = array_values(array_filter($fake->frames(9), static fn (array $f): bool => $f['kind'] !== 1));
            return ['results' => $results, 'frames' => array_column($frames, 'hex')];
        } finally {
            $fake->stop();
        }
    }

    /** @dataProvider nativeTransports */
    public function testEveryTransportReadsThePartialFlagAlike(string $transport): void
    {
        $php = $this->partialFlags(Transport::PHP);
        // A fake daemon whose counts set bit 0 (partial) and a reserved bit.
        $this->assertSame([7, true, true, true, 0, false, [7], true], $php);

        $this->requireTransport($transport);
        $this->assertSame($php, $this->partialFlags($transport), "{$transport} differs from the pure-PHP client");
    }

    /**
     * Counts and lastCountPartial() after each counting call, against a
     * fake daemon whose every count is partial.
     *
     * @return list<mixed>
     */
    private function partialFlags(string $transport): array
    {
        $fake = new FakeDaemon('partial');
        try {
            $client = $this->client($transport, $fake->socket);
            $results = [$client->sendToUser(42, 'e', 1), $client->lastCountPartial()];
            $results[] = $client->isOnline(42);
            $results[] = $client->lastCountPartial();
            $results[] = $client->sendToUsers([], 'e', 1);
            $results[] = $client->lastCountPartial();
            $client->queue();
            $client->sendMsg('e', 1);
            $results[] = $client->flush();
            $results[] = $client->lastCountPartial();
            return $results;
        } finally {
            $fake->stop();
        }
    }

    /** @dataProvider nativeTransports */
    public function testEveryTransportDeliversTheSameJson(string $transport): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        // The receiver reports JSON.stringify() of what socket.io decoded.
        $expected = json_encode(self::message(), JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES);
        $this->assertSame(1, $this->client(Transport::PHP, self::$daemon->socket)->sendToUser(42, 'from-php', self::message()));
        $this->assertSame($expected, $browsers->event('alice', 'from-php')['json'], 'the pure-PHP client');

        $this->requireTransport($transport);
        $this->assertSame(1, $this->client($transport, self::$daemon->socket)->sendToUser(42, "from-{$transport}", self::message()));
        $this->assertSame($expected, $browsers->event('alice', "from-{$transport}")['json'], $transport);
    }

    /**
     * The failure scenarios: the PushException code each must give, and
     * either a call on the real daemon or the mode of a fake daemon.
     *
     * @return array<string, array{0: int, 1: (callable(self): array{0: string, 1: callable})|string}>
     */
    private function failures(): array
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
            'position of a namespace not served' => [\PushException::UNKNOWN_NAMESPACE, static fn (self $t): array => [$real($t), static fn ($c) => $c->position('/nope')]],
            'position with recovery off' => [\PushException::RECOVERY_OFF, 'recovery-off'],
            'excepted user of a wrong type' => [\PushException::INVALID_ARGUMENT, static fn (self $t): array => [$real($t), static fn ($c) => $c->sendMsg('e', 1, [null])]],
            'daemon silent' => [\PushException::TIMEOUT, 'silent'],
            'daemon closes mid-request' => [\PushException::CONNECTION_LOST, 'close-after-request'],
            'daemon speaks another version' => [\PushException::VERSION_MISMATCH, 'old-version'],
            'daemon answers garbage' => [\PushException::PROTOCOL, 'garbage'],
            'frame over the announced limit' => [\PushException::FRAME_TOO_LARGE, 'small-frames'],
        ];
    }

    /**
     * Every failure scenario, once per native transport.
     *
     * @return array<string, array{0: string, 1: int, 2: (callable(self): array{0: string, 1: callable})|string}>
     */
    public function failuresPerTransport(): array
    {
        $cases = [];
        foreach ($this->nativeTransports() as $name => [$transport]) {
            foreach ($this->failures() as $scenario => [$code, $setup]) {
                $cases["{$name}: {$scenario}"] = [$transport, $code, $setup];
            }
        }
        return $cases;
    }

    /**
     * @dataProvider failuresPerTransport
     * @param (callable(self): array{0: string, 1: callable})|string $scenario a
     *        real-daemon scenario, or the mode of a fake daemon
     */
    public function testEveryTransportFailsTheSameWay(string $transport, int $code, callable|string $scenario): void
    {
        // One socket path for both transports, since the messages name it.
        $fakeSocket = Net::tempDir('push-yii-fake-') . '/fake.sock';
        $php = $this->failure(Transport::PHP, $scenario, $fakeSocket);
        $this->assertIsArray($php, 'the pure-PHP client did not throw');
        $this->assertSame(\PushException::class, $php[0]);
        $this->assertSame($code, $php[1], $php[2]);

        $this->requireTransport($transport);
        $this->assertSame($php, $this->failure($transport, $scenario, $fakeSocket), "{$transport} fails differently from the pure-PHP client");
    }

    /**
     * How $scenario fails over $transport: [exception class, code, message],
     * or "no exception".
     *
     * @param (callable(self): array{0: string, 1: callable})|string $scenario
     * @return array{0: class-string, 1: int, 2: string}|string
     */
    private function failure(string $transport, callable|string $scenario, string $fakeSocket): array|string
    {
        $fake = null;
        if (\is_string($scenario)) {
            $fake = new FakeDaemon($scenario, $fakeSocket);
            $call = $scenario === 'recovery-off'
                ? static fn ($c) => $c->position()
                : static fn ($c) => $c->sendToUser(42, 'e', str_repeat('y', 100));
            [$socket, $call] = [$fake->socket, $call];
        } else {
            [$socket, $call] = $scenario($this);
        }
        $client = $this->client($transport, $socket, self::NS, 300);
        $started = microtime(true);
        try {
            $call($client);
            $outcome = 'no exception';
        } catch (\Throwable $error) {
            $outcome = [\get_class($error), $error->getCode(), $error->getMessage()];
        } finally {
            $fake?->stop();
        }
        $this->assertLessThan(2.0, microtime(true) - $started, "{$transport} took too long to fail");
        return $outcome;
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

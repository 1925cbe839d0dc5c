<?php

declare(strict_types=1);

namespace PushTests;

use PushClient;
use PushException;
use PushTests\Support\PushTestCase;

/**
 * Every failure throws PushException with its stable code, within the
 * timeout, and a message that says what to do.
 */
final class ErrorTest extends PushTestCase
{
    /** The timeout these tests set, in milliseconds. */
    private const TIMEOUT_MS = 300;

    private string|false $savedTimeout;

    protected function setUp(): void
    {
        $this->savedTimeout = ini_get('push.timeout_ms');
        ini_set('push.timeout_ms', (string) self::TIMEOUT_MS);
    }

    protected function tearDown(): void
    {
        ini_set('push.timeout_ms', (string) $this->savedTimeout);
        parent::tearDown();
    }

    public function testAMissingDaemonIsUnreachableAndTheMessageNamesThePath(): void
    {
        $socket = sys_get_temp_dir() . '/push-no-daemon-' . bin2hex(random_bytes(4)) . '.sock';

        $e = $this->expectFailure(PushException::UNREACHABLE, fn () => (new PushClient($socket))->sendMsg('e', 1));

        self::assertStringContainsString($socket, $e->getMessage());
        self::assertStringContainsString('check that the daemon is running', $e->getMessage());
    }

    public function testEveryMethodThatTalksToTheDaemonFailsTheSameWay(): void
    {
        $client = new PushClient(sys_get_temp_dir() . '/push-no-daemon.sock', '/ns');
        foreach ([
            'sendToUser' => fn () => $client->sendToUser(1, 'e', 1),
            'sendToUsers' => fn () => $client->sendToUsers([1], 'e', 1),
            'sendToRoom' => fn () => $client->sendToRoom('r', 'e', 1),
            'isOnline' => fn () => $client->isOnline(1),
            'stats' => fn () => $client->stats(),
            'ping' => fn () => $client->ping(),
            'queue+send' => fn () => $client->queue()->sendMsg('e', 1),
        ] as $method => $call) {
            $this->expectFailure(PushException::UNREACHABLE, $call, $method);
        }
    }

    public function testAStuckDaemonTimesOutWithinTheTimeout(): void
    {
        $daemon = $this->startDaemon();
        $client = $this->client();
        $client->ping();
        $daemon->pause();
        try {
            $started = microtime(true);
            $this->expectFailure(PushException::TIMEOUT, fn () => $client->ping());
            $elapsed = microtime(true) - $started;
        } finally {
            $daemon->resume();
        }

        self::assertGreaterThanOrEqual(self::TIMEOUT_MS / 1000 * 0.9, $elapsed);
        self::assertLessThan(self::TIMEOUT_MS / 1000 * 3, $elapsed);
    }

    public function testAStuckDaemonTimesOutOnConnectToo(): void
    {
        $daemon = $this->startDaemon();
        $daemon->pause();
        try {
            $started = microtime(true);
            $this->expectFailure(PushException::TIMEOUT, fn () => $this->client()->sendMsg('e', 1));
            $elapsed = microtime(true) - $started;
        } finally {
            $daemon->resume();
        }
        self::assertLessThan(self::TIMEOUT_MS / 1000 * 3, $elapsed);
    }

    public function testAStuckDaemonWhoseBacklogIsFullTimesOutOnConnect(): void
    {
        $daemon = $this->startDaemon();
        $daemon->pause();
        $queued = [];
        try {
            // Connections queue in the listen backlog until it is full;
            // after that a connect waits for room, which never comes.
            while (count($queued) < 20000) {
                $connection = @stream_socket_client("unix://{$daemon->socket}", $errno, $error, 1.0, STREAM_CLIENT_CONNECT | STREAM_CLIENT_ASYNC_CONNECT);
                if ($connection === false) {
                    break;
                }
                $queued[] = $connection;
            }
            if ($errno === 24) {
                self::markTestSkipped('filling the listen backlog needs more open files than ulimit -n allows');
            }
            self::assertSame(11, $errno, "the backlog should fill up (EAGAIN), not fail with: $error");
            $started = microtime(true);
            $this->expectFailure(PushException::TIMEOUT, fn () => $this->client()->sendMsg('e', 1));
            $elapsed = microtime(true) - $started;
        } finally {
            array_map(fclose(...), $queued);
            $daemon->resume();
        }
        self::assertLessThan(self::TIMEOUT_MS / 1000 * 3, $elapsed);
    }

    public function testAFrameTooLargeIsRefusedBeforeItIsSent(): void
    {
        $this->startDaemon(['--max-frame-size', '4096']);
        $this->openBrowsers(['browser' => []]);
        $client = $this->client();

        $e = $this->expectFailure(PushException::FRAME_TOO_LARGE, fn () => $client->sendMsg('big', str_repeat('x', 5000)));

        self::assertStringContainsString('4096', $e->getMessage());
        // The connection is still good, and the big message never arrived.
        self::assertSame(1, $client->sendMsg('small', 'x'));
        $this->settle(['browser']);
        self::assertSame([], $this->browsers->received('browser', 'big'));
    }

    public function testAnUnknownNamespaceIsRefusedWithAdvice(): void
    {
        $this->startDaemon();

        $e = $this->expectFailure(PushException::UNKNOWN_NAMESPACE, fn () => $this->client('/nope')->sendMsg('e', 1));

        self::assertStringContainsString('/nope', $e->getMessage());
        self::assertStringContainsString('--namespace', $e->getMessage());
    }

    /** @return array<string, array{mixed, string}> */
    public static function unencodable(): array
    {
        return [
            'INF' => [INF, 'Inf and NaN'],
            'NAN' => [['x' => NAN], 'Inf and NaN'],
            'invalid UTF-8' => [['text' => "\xB1\x31"], 'Malformed UTF-8'],
            'resource' => [STDIN, 'Type is not supported'],
            'too deep' => [self::nested(600), 'Maximum stack depth'],
        ];
    }

    /** @dataProvider unencodable */
    public function testAValueThatCannotBeEncodedThrowsAndSendsNothing(mixed $message, string $reason): void
    {
        $this->startDaemon();
        $this->openBrowsers(['browser' => []]);
        $client = $this->client();

        $e = $this->expectFailure(PushException::ENCODING, fn () => $client->sendMsg('bad', $message));
        $this->expectFailure(PushException::ENCODING, fn () => $client->queue()->sendMsg('bad', $message));
        self::assertSame([], $client->flush());

        self::assertStringContainsString($reason, $e->getMessage());
        $this->settle(['browser']);
        self::assertSame([], $this->browsers->received('browser', 'bad'));
    }

    public function testBadArgumentsAreInvalidArguments(): void
    {
        $this->startDaemon();
        $client = $this->client();
        foreach ([
            'float user' => fn () => $client->sendToUser(1.5, 'e', 1),
            'array user' => fn () => $client->isOnline([1]),
            'null in users' => fn () => $client->sendToUsers(['a', null], 'e', 1),
            'object room' => fn () => $client->sendToRoom(new \stdClass(), 'e', 1),
            'float in except' => fn () => $client->sendMsg('e', 1, except: [1.5]),
            'non-UTF-8 user' => fn () => $client->sendToUser("\xff", 'e', 1),
            'empty event' => fn () => $client->sendMsg('', 1),
        ] as $case => $call) {
            $this->expectFailure(PushException::INVALID_ARGUMENT, $call, $case);
        }
    }

    public function testPushExceptionIsAnExceptionPhpCodeCanThrow(): void
    {
        $e = new PushException('custom', PushException::REFUSED);

        self::assertInstanceOf(\Exception::class, $e);
        self::assertSame(PushException::REFUSED, $e->getCode());
        self::assertSame(__LINE__ - 4, $e->getLine());
    }

    /** Runs `$call`, which must throw PushException with `$code`, within the timeout. */
    /**
     * A daemon of another protocol version refuses the HELLO, and the
     * message says which side to upgrade. The debug daemon speaks the
     * version PUSH_CORE_TEST_PROTOCOL_VERSION names (release builds ignore
     * it), as an older or a newer release would.
     */
    public function testAVersionMismatchSaysWhichSideToUpgrade(): void
    {
        $ours = (int) self::protocolVersionShownByRi();
        foreach ([
            'newer daemon' => [$ours + 1, "the client speaks publish protocol {$ours}, older than this push-core's " . ($ours + 1) . ': upgrade the client'],
            'older daemon' => [$ours - 1, "the client speaks publish protocol {$ours}, newer than this push-core's " . ($ours - 1) . ': upgrade push-core'],
        ] as $case => [$daemonVersion, $says]) {
            $daemon = $this->startDaemon(env: ['PUSH_CORE_TEST_PROTOCOL_VERSION' => (string) $daemonVersion]);
            $e = $this->expectFailure(PushException::VERSION_MISMATCH, fn () => (new PushClient($daemon->socket, '/ns'))->sendMsg('e', 1), $case);
            self::assertStringContainsString($says, $e->getMessage(), $case);
            self::assertStringEndsWith("; the PHP client speaks publish protocol {$ours}", $e->getMessage(), $case);
            $daemon->stop();
        }
    }

    /** The protocol version `php --ri push` shows, as an operator reads it. */
    private static function protocolVersionShownByRi(): string
    {
        ob_start();
        (new \ReflectionExtension('push'))->info();
        $info = (string) ob_get_clean();
        self::assertSame(1, preg_match('/^protocol version => (\d+)$/m', $info, $m), $info);
        return $m[1];
    }

    private function expectFailure(int $code, callable $call, string $case = ''): PushException
    {
        $started = microtime(true);
        try {
            $call();
        } catch (PushException $e) {
            self::assertSame($code, $e->getCode(), "$case: {$e->getMessage()}");
            self::assertLessThan(self::TIMEOUT_MS / 1000 * 3, microtime(true) - $started, "$case took too long");
            return $e;
        }
        self::fail("$case: no PushException was thrown");
    }

    private static function nested(int $depth): array
    {
        $value = [];
        for ($i = 0; $i < $depth; $i++) {
            $value = [$value];
        }
        return $value;
    }
}

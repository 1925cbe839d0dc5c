<?php

declare(strict_types=1);

namespace PushTests;

use FFI;
use PushException;
use PushTests\Support\Php;
use PushTests\Support\PushTestCase;
use ReflectionClass;

/**
 * The C ABI (push-ffi) through PHP's FFI, with the committed header, as in
 * examples/ffi.php.
 */
final class FfiTest extends PushTestCase
{
    private const EXAMPLE = __DIR__ . '/../../examples/ffi.php';
    private const HEADER = __DIR__ . '/../../push-ffi/include/push_ffi.h';

    public static function library(): string
    {
        return getenv('PUSH_FFI_LIB') ?: dirname(__DIR__, 2) . '/target/debug/libpush_ffi.so';
    }

    public function testTheExampleDeliversAMessage(): void
    {
        $this->startDaemon();
        $browsers = $this->openBrowsers(['alice' => ['user' => 'alice'], 'guest' => []]);

        [$status, $stdout, $stderr] = $this->example([$this->daemon->socket, '/ns', 'from-ffi', '{"via":"ffi","n":[1,2]}', 'alice']);

        self::assertSame(0, $status, $stderr);
        self::assertSame("delivered to 1 connections\n", $stdout);
        self::assertSame(['via' => 'ffi', 'n' => [1, 2]], $browsers->waitForEvent('alice', 'from-ffi'));
        $this->settle(['guest']);
        self::assertSame([], $browsers->received('guest', 'from-ffi'));
    }

    public function testTheExampleReportsAnUnreachableDaemon(): void
    {
        [$status, , $stderr] = $this->example(['/nonexistent/push.sock']);

        self::assertSame(1, $status);
        self::assertStringContainsString('push failed [' . PushException::UNREACHABLE . ']', $stderr);
        self::assertStringContainsString('/nonexistent/push.sock', $stderr);
    }

    public function testOnlineRoomsExceptAndErrorsThroughTheHeader(): void
    {
        $this->startDaemon();
        $browsers = $this->openBrowsers(['alice' => ['user' => 'alice', 'rooms' => ['r']], 'bob' => ['user' => 'bob', 'rooms' => ['r']]]);
        $ffi = FFI::cdef((string) file_get_contents(self::HEADER), self::library());
        $client = $ffi->push_open($this->daemon->socket, 500);

        self::assertSame(1, $ffi->push_online($client, '/ns', 'alice'));
        self::assertSame(0, $ffi->push_online($client, '/ns', 'nobody'));
        $rooms = FFI::new('const char *[1]');
        $room = FFI::new('char[2]');
        FFI::memcpy($room, 'r', 1);
        $rooms[0] = FFI::cast('const char *', $room);
        $except = FFI::new('const char *[1]');
        $bob = FFI::new('char[4]');
        FFI::memcpy($bob, 'bob', 3);
        $except[0] = FFI::cast('const char *', $bob);
        self::assertSame(1, $ffi->push_send($client, '/ns', 'room', '"r"', null, 0, $rooms, 1, $except, 1));
        self::assertSame($ffi->PUSH_OK, $ffi->push_last_error_code($client));

        self::assertSame(-1, $ffi->push_send($client, '/nope', 'e', '1', null, 0, null, 0, null, 0));
        self::assertSame($ffi->PUSH_ERROR_UNKNOWN_NAMESPACE, $ffi->push_last_error_code($client));
        self::assertStringContainsString('/nope', $ffi->push_last_error_message($client));
        self::assertSame(-1, $ffi->push_send($client, '/ns', 'e', 'not json', null, 0, null, 0, null, 0));
        self::assertSame($ffi->PUSH_ERROR_ENCODING, $ffi->push_last_error_code($client));
        self::assertSame(-1, $ffi->push_send($client, '/ns', null, '1', null, 0, null, 0, null, 0));
        self::assertSame($ffi->PUSH_ERROR_INVALID_ARGUMENT, $ffi->push_last_error_code($client));
        self::assertSame('event is NULL', $ffi->push_last_error_message($client));
        $ffi->push_close($client);

        self::assertSame('r', $browsers->waitForEvent('alice', 'room'));
        $this->settle(['bob']);
        self::assertSame([], $browsers->received('bob', 'room'));
    }

    public function testTheCCodesAreThePushExceptionCodes(): void
    {
        $ffi = FFI::cdef((string) file_get_contents(self::HEADER), self::library());
        foreach ((new ReflectionClass(PushException::class))->getConstants() as $name => $code) {
            self::assertSame($code, $ffi->{"PUSH_ERROR_$name"}, $name);
        }
    }

    /**
     * @param list<string> $args
     * @return array{int, string, string}
     */
    private function example(array $args): array
    {
        return Php::run(array_merge(['-d', 'ffi.enable=1', self::EXAMPLE], $args), withExtension: false);
    }
}

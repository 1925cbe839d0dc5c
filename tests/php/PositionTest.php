<?php

declare(strict_types=1);

namespace PushTests;

use FFI;
use PushException;
use PushTests\Support\PushTestCase;

/**
 * position(), the page-render bootstrap of missed-message recovery: PHP asks
 * for the namespace's offset while it renders the page, the page connects
 * with it, and receives what was published after, even before its socket
 * was up. Through the extension and through the C ABI, against the real
 * daemon and the real socket.io client.
 */
final class PositionTest extends PushTestCase
{
    private const HEADER = __DIR__ . '/../../push-ffi/include/push_ffi.h';

    public function testPositionIsAStringThatMovesWithEachPublishInItsNamespace(): void
    {
        $client = $this->client();

        $first = $client->position();
        self::assertIsString($first);
        self::assertNotSame('', $first);
        self::assertSame($first, $client->position(), 'nothing was published, yet the position moved');
        $other = $client->position('/other');

        $client->sendMsg('e', 1);

        $second = $client->position();
        self::assertNotSame($first, $second);
        self::assertSame($other, $client->position('/other'), 'a publish to /ns moved /other');
        // The argument is optional; without it, the client's namespace counts.
        self::assertSame($other, $client->setNamespace('/other')->position());
        self::assertSame($second, $client->position('/ns'));
    }

    public function testAPageRenderedWithThePositionReceivesExactlyWhatWasPublishedAfter(): void
    {
        $client = $this->client();
        $client->sendMsg('news', 'before the page');
        // The page render: the offset goes into the HTML.
        $offset = $client->position();
        $client->sendMsg('news', 'after the page');
        $client->sendToUser('alice', 'dm', 'for alice, after the page');
        $client->sendToUser('bob', 'dm', 'for bob');

        // The browser runs the page's script only now.
        $browsers = $this->openBrowsers([
            'page' => ['user' => 'alice', 'offset' => $offset],
            'no-offset' => ['user' => 'alice'],
        ]);

        self::assertSame(['recovered' => true, 'replayed' => 2, 'offset' => $offset], $browsers->recovery('page'));
        $news = $browsers->event('page', 'news');
        self::assertSame('after the page', $news['data']);
        self::assertIsString($news['offset']);
        self::assertNotSame($offset, $news['offset']);
        self::assertSame('for alice, after the page', $browsers->event('page', 'dm')['data']);
        $this->settle(['page', 'no-offset']);
        self::assertSame(['after the page'], $browsers->received('page', 'news'), 'the message before the page was replayed');
        self::assertSame(['for alice, after the page'], $browsers->received('page', 'dm'));
        // Without the offset nothing published before the connect arrives.
        self::assertFalse($browsers->recovery('no-offset')['recovered']);
        self::assertSame([], $browsers->received('no-offset', 'news'));
        self::assertSame([], $browsers->received('no-offset', 'dm'));
    }

    public function testWithRecoveryOffPositionThrowsRecoveryOffAndPublishingStillWorks(): void
    {
        $this->startDaemon(['--recovery-window', '0']);
        $browsers = $this->openBrowsers(['guest' => []]);
        $client = $this->client();

        try {
            $client->position();
            self::fail('position() returned with recovery off');
        } catch (PushException $error) {
            self::assertSame(PushException::RECOVERY_OFF, $error->getCode());
            self::assertStringContainsString('recovery_off (13)', $error->getMessage());
            self::assertStringContainsString('--recovery-window', $error->getMessage());
        }

        self::assertSame(1, $client->sendMsg('still', 'works'));
        self::assertSame('works', $browsers->waitForEvent('guest', 'still'));
    }

    public function testPositionOfANamespaceNotServedSaysWhich(): void
    {
        try {
            $this->client()->position('/nope');
            self::fail('position() of an unknown namespace returned');
        } catch (PushException $error) {
            self::assertSame(PushException::UNKNOWN_NAMESPACE, $error->getCode());
            self::assertStringContainsString('"/nope" is not served', $error->getMessage());
        }
    }

    public function testTheCAbiGivesThePositionAndTheBootstrapWorksThroughIt(): void
    {
        $this->startDaemon();
        $ffi = FFI::cdef((string) file_get_contents(self::HEADER), FfiTest::library());
        $client = $ffi->push_open($this->daemon->socket, 500);
        try {
            self::assertSame(0, $ffi->push_send($client, '/ns', 'news', '"before"', null, 0, null, 0, null, 0));
            $offset = $ffi->push_position($client, '/ns');
            self::assertIsString($offset);
            self::assertSame($ffi->PUSH_OK, $ffi->push_last_error_code($client));
            self::assertSame($offset, $this->client()->position(), 'the C ABI and the extension disagree');
            self::assertSame(0, $ffi->push_send($client, '/ns', 'news', '"after"', null, 0, null, 0, null, 0));

            self::assertNull($ffi->push_position($client, '/nope'));
            self::assertSame($ffi->PUSH_ERROR_UNKNOWN_NAMESPACE, $ffi->push_last_error_code($client));
            self::assertNull($ffi->push_position($client, null));
            self::assertSame('ns is NULL', $ffi->push_last_error_message($client));
        } finally {
            $ffi->push_close($client);
        }

        $browsers = $this->openBrowsers(['page' => ['offset' => $offset]]);
        self::assertSame(['recovered' => true, 'replayed' => 1, 'offset' => $offset], $browsers->recovery('page'));
        self::assertSame('after', $browsers->event('page', 'news')['data']);
        $this->settle(['page']);
        self::assertSame(['after'], $browsers->received('page', 'news'));
    }

    public function testTheCAbiReportsRecoveryOff(): void
    {
        $this->startDaemon(['--recovery-window', '0']);
        $ffi = FFI::cdef((string) file_get_contents(self::HEADER), FfiTest::library());
        $client = $ffi->push_open($this->daemon->socket, 500);
        try {
            self::assertNull($ffi->push_position($client, '/ns'));
            self::assertSame($ffi->PUSH_ERROR_RECOVERY_OFF, $ffi->push_last_error_code($client));
            self::assertStringContainsString('recovery_off', $ffi->push_last_error_message($client));
        } finally {
            $ffi->push_close($client);
        }
    }
}

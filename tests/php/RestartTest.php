<?php

declare(strict_types=1);

namespace PushTests;

use PushTests\Support\PushTestCase;

/**
 * The persistent connection outlives a daemon restart: the next send
 * notices the old connection is dead, reconnects, and delivers exactly once.
 */
final class RestartTest extends PushTestCase
{
    public function testAKilledAndRestartedDaemonGetsTheNextSendExactlyOnce(): void
    {
        $daemon = $this->startDaemon();
        $browsers = $this->openBrowsers(['guest' => []]);
        $client = $this->client();
        self::assertSame(1, $client->sendMsg('first', 1));
        $browsers->waitForEvent('guest', 'first');

        $daemon->kill();
        $daemon->start();
        $browsers->waitForConnects(['guest'], 2);

        self::assertSame(1, $client->sendMsg('second', 2));
        $this->settle(['guest']);
        self::assertSame([1], $browsers->received('guest', 'first'));
        self::assertSame([2], $browsers->received('guest', 'second'));
    }

    public function testAGracefulRestartToo(): void
    {
        $daemon = $this->startDaemon();
        $browsers = $this->openBrowsers(['guest' => []]);
        $client = $this->client();
        $client->sendMsg('first', 1);

        $daemon->stop();
        $daemon->start();
        $browsers->waitForConnects(['guest'], 2);

        self::assertSame(1, $client->sendMsg('second', 2));
        self::assertTrue($client->ping() > 0);
        $this->settle(['guest']);
        self::assertSame([2], $browsers->received('guest', 'second'));
    }
}

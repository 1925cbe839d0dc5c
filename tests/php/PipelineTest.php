<?php

declare(strict_types=1);

namespace PushTests;

use PushClient;
use PushException;
use PushTests\Support\Php;
use PushTests\Support\PushTestCase;

/** queue() + flush(): sends return at once, results come back at flush, errors included. */
final class PipelineTest extends PushTestCase
{
    protected function setUp(): void
    {
        $this->startDaemon();
        $this->openBrowsers(['alice' => ['user' => 'alice', 'rooms' => ['r']], 'guest' => []]);
    }

    public function testSendsReturnTheirIndexAndFlushReturnsTheirResults(): void
    {
        $client = $this->client()->queue();

        self::assertSame(0, $client->sendMsg('p', 1));
        self::assertSame(1, $client->sendToUser('alice', 'p', 2));
        self::assertSame(2, $client->sendToUsers([], 'p', 'nobody'));
        self::assertSame(3, $client->sendToRoom('r', 'p', 3));
        self::assertSame(4, $client->sendToUser('nobody', 'p', 4));

        self::assertSame([2, 1, 0, 1, 0], $client->flush());
        $this->settle(['alice', 'guest']);
        self::assertSame([1, 2, 3], $this->browsers->received('alice', 'p'));
        self::assertSame([1], $this->browsers->received('guest', 'p'));
    }

    public function testFlushEndsPipelining(): void
    {
        $client = $this->client()->queue();
        $client->sendMsg('p', 1);
        $client->flush();

        self::assertSame(2, $client->sendMsg('p', 2), 'a send after flush() waits for its result again');
        self::assertSame([], $client->flush());
    }

    public function testErrorsAreReportedInPlaceNotDropped(): void
    {
        $client = $this->client()->queue();
        $client->sendMsg('p', 'before');
        $client->setNamespace('/nope')->sendMsg('p', 'lost');
        $client->setNamespace('/ns')->sendMsg('p', 'after');

        $results = $client->flush();

        self::assertCount(3, $results);
        self::assertSame(2, $results[0]);
        self::assertInstanceOf(PushException::class, $results[1]);
        self::assertSame(PushException::UNKNOWN_NAMESPACE, $results[1]->getCode());
        self::assertSame(2, $results[2]);
    }

    public function testManyPublishesArriveInOrder(): void
    {
        // Under the daemon's per-connection buffer (socketioxide keeps 128
        // packets), so every one is delivered rather than shed.
        $count = 100;
        $client = $this->client()->queue();
        for ($i = 0; $i < $count; $i++) {
            $client->sendToUser('alice', 'seq', $i);
        }

        $results = $client->flush();

        self::assertSame(array_fill(0, $count, 1), $results);
        $this->settle(['alice']);
        self::assertSame(range(0, $count - 1), $this->browsers->received('alice', 'seq'));
    }

    public function testEachClientFlushesOnlyItsOwnPublishes(): void
    {
        $first = $this->client()->queue();
        $second = $this->client()->queue();
        $first->sendMsg('p', 1);
        $second->sendToUser('alice', 'p', 2);
        $first->sendToUser('nobody', 'p', 3);

        self::assertSame([2, 0], $first->flush());
        self::assertSame([1], $second->flush());
    }

    public function testSynchronousCallsInBetweenKeepTheQueuedResults(): void
    {
        $client = $this->client()->queue();
        $client->sendMsg('p', 1);
        self::assertTrue($client->isOnline('alice'));
        self::assertIsArray($client->stats());
        $client->sendMsg('p', 2);

        self::assertSame([2, 2], $client->flush());
    }

    public function testCloseWritesTheQueueFirst(): void
    {
        $client = $this->client()->queue();
        $client->sendMsg('p', 'queued');
        $client->close();

        self::assertSame([2], $client->flush());
        self::assertSame(['queued'], $this->browsers->received('guest', 'p') ?: [$this->browsers->waitForEvent('guest', 'p')]);
    }

    public function testAQueueNeverFlushedIsSentWhenTheClientIsDestroyed(): void
    {
        $client = $this->client()->queue();
        $client->sendMsg('p', 'destroyed');
        unset($client);

        self::assertSame('destroyed', $this->browsers->waitForEvent('guest', 'p'));
    }

    public function testFailuresOfAnUnflushedQueueBecomeAWarning(): void
    {
        $script = sprintf(
            '$c = (new PushClient(%s, "/nope"))->queue(); $c->sendMsg("p", 1); unset($c); echo "done";',
            var_export($this->daemon->socket, true),
        );

        [$status, $stdout, $stderr] = Php::run(['-d', 'display_errors=stderr', '-r', $script]);

        self::assertSame(0, $status, $stderr);
        self::assertSame('done', $stdout);
        self::assertStringContainsString('PushClient was destroyed with publishes queued but not flushed', $stderr);
        self::assertStringContainsString('unknown_namespace', $stderr);
    }
}

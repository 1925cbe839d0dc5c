<?php

declare(strict_types=1);

namespace PushYiiTests\Protocol;

use PushCore\Yii\Transport;
use PushTests\Harness\Browsers;
use PushTests\Harness\Daemon;
use PushTests\Harness\Net;
use PushTests\Harness\Process;
use PushYiiTests\TestCase;

/**
 * A count that leaves out a cluster node says so, over every transport.
 *
 * A real redis-server and two real push-core nodes sharing through it
 * (--adapter redis); a browser logged in as user 42 on node A. Node A counts
 * node B's connections from B's presence (docs/scaling.md, "Counts in a
 * cluster"); once B is frozen (SIGSTOP) long enough for its heartbeat to be
 * overdue (1.5 s), that presence may be out of date: sendMsg() and
 * isOnline() still return the count, and lastCountPartial() is true (until
 * A stops counting the silent B, at 3 s). Once B runs again the counts are
 * whole and lastCountPartial() is false again.
 */
final class ClusterPartialTest extends TestCase
{
    private static ?Process $redis = null;
    private static ?Daemon $nodeA = null;
    private static ?Daemon $nodeB = null;

    public static function setUpBeforeClass(): void
    {
        parent::setUpBeforeClass();
        $port = Net::freePort();
        self::$redis = new Process(
            ['redis-server', '--port', (string) $port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
            Net::tempDir('push-yii-redis-') . '/redis.log',
        );
        Net::waitForPort($port, self::$redis);
        $node = fn (string $name): Daemon => new Daemon([self::NS], self::$site->url('/push/auth'), [
            '--auth-cache-ttl', '0',
            '--adapter', 'redis',
            '--redis-url', "redis://127.0.0.1:{$port}",
            '--node-id', $name,
        ]);
        self::$nodeA = $node('a');
        self::$nodeB = $node('b');
    }

    public static function tearDownAfterClass(): void
    {
        self::$nodeB?->resume();
        self::$nodeB?->stop();
        self::$nodeA?->stop();
        self::$redis?->stop();
        self::$nodeA = self::$nodeB = self::$redis = null;
        parent::tearDownAfterClass();
    }

    protected function tearDown(): void
    {
        if ($this->hasFailed()) {
            fwrite(STDERR, "\n--- node a ---\n" . self::$nodeA?->log() . "\n--- node b ---\n" . self::$nodeB?->log() . "\n");
        }
        parent::tearDown();
    }

    /** @dataProvider transports */
    public function testACountThatLeavesOutAFrozenNodeIsPartialUntilItAnswersAgain(string $transport): void
    {
        $this->requireTransport($transport);
        $browser = new Browsers(self::$nodeA->url(), [
            ['name' => 'alice', 'namespace' => self::NS, 'cookie' => self::$site->login(42)],
        ]);
        try {
            $client = Transport::create($transport, self::$nodeA->socket, self::NS, 2000, self::ffiLibrary(), self::ffiHeader());
            $this->waitForWholeCounts($client);

            self::$nodeB->pause();
            try {
                $this->waitForPartialCounts($client);
                $this->assertSame(1, $client->sendMsg('while-b-sleeps', 1), 'the live node still counts its own');
                $this->assertTrue($client->lastCountPartial(), 'sendMsg() left out node b');
                $this->assertTrue($client->isOnline(42));
                $this->assertTrue($client->lastCountPartial(), 'isOnline() left out node b');
                $this->assertSame(0, $client->sendToUsers([], 'nobody', 1), 'reaches nobody without asking');
                $this->assertFalse($client->lastCountPartial(), 'a count known without asking is whole');

                $client->queue();
                $client->sendMsg('queued', 1);
                $this->assertSame([1], $client->flush());
                $this->assertTrue($client->lastCountPartial(), 'flush() had a partial count');
            } finally {
                self::$nodeB->resume();
            }

            $this->waitForWholeCounts($client);
            $this->assertSame(1, $client->sendMsg('after', 1));
            $this->assertFalse($client->lastCountPartial());
            $this->assertTrue($client->isOnline(42));
            $this->assertFalse($client->lastCountPartial());
        } finally {
            $browser->stop();
        }
    }

    /** Waits until node a says its counts may be out of date: b is overdue. */
    private function waitForPartialCounts(object $client): void
    {
        Net::waitUntil(function () use ($client): bool {
            $client->sendToUser('nobody', 'probe', null);
            return $client->lastCountPartial();
        }, 'node b\'s heartbeat to be overdue at node a');
    }

    /** Waits until node a's counts include node b (it joined, or woke up). */
    private function waitForWholeCounts(object $client): void
    {
        Net::waitUntil(function () use ($client): bool {
            $client->sendToUser('nobody', 'warm-up', null);
            return !$client->lastCountPartial();
        }, 'node a to count node b');
    }
}

<?php

declare(strict_types=1);

namespace PushTests;

use PushClient;
use PushTests\Support\PushTestCase;

/** Every method of PushClient, against the real daemon and real browsers. */
final class PublishTest extends PushTestCase
{
    protected function setUp(): void
    {
        $this->startDaemon();
        $this->openBrowsers([
            'alice' => ['user' => 'alice', 'rooms' => ['kitchen']],
            'alice2' => ['user' => 'alice'],
            'bob' => ['user' => 42, 'rooms' => ['kitchen', 'garden']],
            'guest' => [],
            'other' => ['user' => 'alice', 'namespace' => '/other'],
        ]);
    }

    public function testSendMsgBroadcastsToTheNamespace(): void
    {
        $reached = $this->client()->sendMsg('news', ['n' => 1]);

        self::assertSame(4, $reached);
        foreach (['alice', 'alice2', 'bob', 'guest'] as $browser) {
            self::assertSame(['n' => 1], $this->browsers->waitForEvent($browser, 'news'));
        }
        $this->settle(['other'], '/other');
        self::assertSame([], $this->browsers->received('other', 'news'));
    }

    public function testSendMsgCanLeaveUsersOut(): void
    {
        $reached = $this->client()->sendMsg('news', 'hi', except: ['alice']);

        self::assertSame(2, $reached);
        $this->settle(['alice', 'alice2', 'bob', 'guest']);
        self::assertSame([], $this->browsers->received('alice', 'news'));
        self::assertSame([], $this->browsers->received('alice2', 'news'));
        self::assertSame(['hi'], $this->browsers->received('bob', 'news'));
        self::assertSame(['hi'], $this->browsers->received('guest', 'news'));
    }

    public function testSendToUserReachesEveryConnectionOfThatUserOnly(): void
    {
        self::assertSame(2, $this->client()->sendToUser('alice', 'dm', 'for alice'));
        // An integer id is the same user as its decimal string.
        self::assertSame(1, $this->client()->sendToUser(42, 'dm', 'for bob'));

        $this->settle(['alice', 'alice2', 'bob', 'guest']);
        self::assertSame(['for alice'], $this->browsers->received('alice', 'dm'));
        self::assertSame(['for alice'], $this->browsers->received('alice2', 'dm'));
        self::assertSame(['for bob'], $this->browsers->received('bob', 'dm'));
        self::assertSame([], $this->browsers->received('guest', 'dm'));
    }

    public function testSendToUsers(): void
    {
        self::assertSame(3, $this->client()->sendToUsers(['alice', 42], 'dm', 1));
        self::assertSame(1, $this->client()->sendToUsers(['alice', 42], 'dm', 2, except: ['alice']));
        self::assertSame(0, $this->client()->sendToUsers(['nobody'], 'dm', 3));
        // An empty list reaches nobody; it must not be read as "everyone".
        self::assertSame(0, $this->client()->sendToUsers([], 'dm', 4));

        $this->settle(['alice', 'bob', 'guest']);
        self::assertSame([1], $this->browsers->received('alice', 'dm'));
        self::assertSame([1, 2], $this->browsers->received('bob', 'dm'));
        self::assertSame([], $this->browsers->received('guest', 'dm'));
    }

    public function testSendToRoomTakesOneRoomOrSeveral(): void
    {
        self::assertSame(2, $this->client()->sendToRoom('kitchen', 'room', 'k'));
        self::assertSame(1, $this->client()->sendToRoom(['garden'], 'room', 'g'));
        self::assertSame(2, $this->client()->sendToRoom(['kitchen', 'garden'], 'room', 'both'));
        self::assertSame(1, $this->client()->sendToRoom('kitchen', 'room', 'not alice', except: ['alice']));
        self::assertSame(0, $this->client()->sendToRoom([], 'room', 'nobody'));

        $this->settle(['alice', 'alice2', 'bob']);
        self::assertSame(['k', 'both'], $this->browsers->received('alice', 'room'));
        self::assertSame([], $this->browsers->received('alice2', 'room'));
        self::assertSame(['k', 'g', 'both', 'not alice'], $this->browsers->received('bob', 'room'));
    }

    public function testSetNamespaceChangesWhereMessagesGo(): void
    {
        $client = $this->client();
        self::assertSame($client, $client->setNamespace('/other'));
        self::assertSame(1, $client->sendToUser('alice', 'ns', 'other'));
        // Method names are case-insensitive: the old component's spelling works.
        self::assertSame(2, $client->setNameSpace('/ns')->sendToUser('alice', 'ns', 'ns'));

        $this->settle(['alice']);
        $this->settle(['other'], '/other');
        self::assertSame(['other'], $this->browsers->received('other', 'ns'));
        self::assertSame(['ns'], $this->browsers->received('alice', 'ns'));
    }

    public function testIsOnline(): void
    {
        $client = $this->client();
        self::assertTrue($client->isOnline('alice'));
        self::assertTrue($client->isOnline(42));
        self::assertTrue($client->isOnline('42'));
        self::assertFalse($client->isOnline('nobody'));
        self::assertFalse($this->client('/other')->isOnline(42));
    }

    public function testStatsIsTheDaemonsCounters(): void
    {
        $stats = $this->client()->stats();

        self::assertSame(5, $stats['connections']);
        self::assertSame(4, $stats['namespaces']['/ns']['connections']);
        self::assertSame(\PushClient::class, get_class($this->client()));
        self::assertGreaterThanOrEqual(1, $stats['publishers']['accepted_total']);
    }

    public function testPingMeasuresARoundTripInSeconds(): void
    {
        $rtt = $this->client()->ping();

        self::assertGreaterThan(0.0, $rtt);
        self::assertLessThan(1.0, $rtt);
    }

    public function testCloseDropsTheConnectionAndTheNextCallReconnects(): void
    {
        $client = $this->client();
        $client->ping();
        $before = $client->stats()['publishers']['accepted_total'];

        $client->close();
        self::assertSame(4, $client->sendMsg('after-close', 1));

        self::assertSame($before + 1, $client->stats()['publishers']['accepted_total']);
    }

    public function testClientsOfOneSocketShareOneConnection(): void
    {
        $first = $this->client();
        $first->ping();
        $before = $first->stats()['publishers']['accepted_total'];

        for ($i = 0; $i < 10; $i++) {
            (new PushClient($this->daemon->socket, '/ns'))->sendMsg('shared', $i);
        }

        self::assertSame($before, $first->stats()['publishers']['accepted_total']);
    }
}

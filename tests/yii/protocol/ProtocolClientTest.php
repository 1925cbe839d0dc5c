<?php

declare(strict_types=1);

namespace PushYiiTests\Protocol;

use PushCore\Yii\Protocol\Client;
use PushCore\Yii\Protocol\Publish;
use PushCore\Yii\Protocol\Request;
use PushCore\Yii\Protocol\SharedConnections;
use PushYiiTests\TestCase;

/**
 * The pure-PHP client on its own, against the real daemon with real
 * socket.io clients receiving: the wire format of docs/protocol.md, every
 * method, pipelining, and the delivery guarantee across a daemon restart.
 */
final class ProtocolClientTest extends TestCase
{
    public function testEncodesTheExampleOfTheProtocolDoc(): void
    {
        $frame = Request::publish(new Publish('/', 'news', [], [], [], '{"n":1}'))->frame(1, 1 << 20);

        $this->assertSame(
            '0000001f' . '03' . '00000001' . '00012f' . '00046e657773' . '0000' . '0000' . '0000' . '000000077b226e223a317d',
            bin2hex($frame),
        );
    }

    public function testEveryMethodReachesTheRightBrowsers(): void
    {
        $browsers = $this->browsers(['alice' => 42, 'bob' => 7, 'guest' => null]);
        $client = new Client(self::$daemon->socket, self::NS);

        $this->assertSame(3, $client->sendMsg('everyone', ['n' => 1]));
        foreach (['alice', 'bob', 'guest'] as $name) {
            $this->assertSame('{"n":1}', $browsers->event($name, 'everyone')['json']);
        }

        $this->assertSame(1, $client->sendToUser(42, 'private', 'for alice'));
        $this->assertSame('for alice', $browsers->event('alice', 'private')['data']);

        $this->assertSame(2, $client->sendToUsers([42, '7'], 'both', []));
        $browsers->event('alice', 'both');
        $this->assertSame('[]', $browsers->event('bob', 'both')['json']);

        // The stand-in site puts user 42 in group:0 and user 7 in group:1.
        $this->assertSame(1, $client->sendToRoom('group:1', 'room', 'bob'));
        $browsers->event('bob', 'room');
        $this->assertSame(2, $client->sendToRoom(['group:0', 'group:1'], 'rooms', 'both'));

        $this->assertSame(2, $client->sendMsg('not-alice', 1, [42]));
        $browsers->event('bob', 'not-alice');
        $browsers->event('guest', 'not-alice');

        $this->assertSame(0, $client->sendToUsers([], 'nobody', 1));
        $this->assertTrue($client->isOnline(42));
        $this->assertTrue($client->isOnline('7'));
        $this->assertFalse($client->isOnline(999));
        $this->assertGreaterThanOrEqual(3, $client->stats()['connections']);
        $this->assertGreaterThan(0.0, $client->ping());

        $events = $browsers->drain();
        $unexpected = array_filter($events, static fn (array $e): bool => !\in_array($e['event'], ['both', 'rooms'], true)
            || ($e['event'] === 'rooms' && $e['client'] === 'guest'));
        $this->assertSame([], array_values($unexpected), 'a browser received a message that was not for it');
    }

    public function testEncodesPosition(): void
    {
        $this->assertSame(
            '0000000c' . '06' . '00000005' . '00052f6e657773',
            bin2hex(Request::position('/news')->frame(5, 1 << 20)),
        );
    }

    public function testAPageRenderedWithThePositionReceivesExactlyWhatWasPublishedAfter(): void
    {
        $client = new Client(self::$daemon->socket, self::NS);
        $client->sendToUser(42, 'news', 'before the page');
        $offset = $client->position();
        $this->assertIsString($offset);
        $this->assertSame($offset, $client->position(self::NS));
        $this->assertSame(0, $client->sendToUser(42, 'news', 'after the page'));
        $this->assertNotSame($offset, $client->position());

        $browsers = $this->browsers(['page' => 42], self::NS, $offset);

        $this->assertSame(['recovered' => true, 'replayed' => 1, 'offset' => $offset], $browsers->recovery('page'));
        $this->assertSame('after the page', $browsers->event('page', 'news')['data']);
        $client->sendToUser(42, 'marker', null);
        $browsers->event('page', 'marker');
        $this->assertSame([], $browsers->drain(0.0), 'the message before the page arrived too');
    }

    public function testPositionFailsClearlyWithRecoveryOffOrAnUnknownNamespace(): void
    {
        try {
            (new Client(self::$daemon->socket, self::NS))->position('/nope');
            $this->fail('position() of a namespace not served returned');
        } catch (\PushException $error) {
            $this->assertSame(\PushException::UNKNOWN_NAMESPACE, $error->getCode());
            $this->assertStringContainsString('"/nope" is not served', $error->getMessage());
        }
        $daemon = self::daemonWithoutRecovery();
        try {
            $client = new Client($daemon->socket, self::NS);
            try {
                $client->position();
                $this->fail('position() returned with recovery off');
            } catch (\PushException $error) {
                $this->assertSame(\PushException::RECOVERY_OFF, $error->getCode());
                $this->assertStringContainsString('recovery_off (13)', $error->getMessage());
                $this->assertStringContainsString('--recovery-window', $error->getMessage());
            }
            // The connection is still good for publishing.
            $this->assertSame(0, $client->sendMsg('still', 'works'));
        } finally {
            $daemon->stop();
        }
    }

    public function testPipelinedSendsReturnTheirResultsAtFlush(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $client = new Client(self::$daemon->socket, self::NS);
        $other = new Client(self::$daemon->socket, self::NS);

        $client->queue();
        $this->assertSame(0, $client->sendMsg('first', 1));
        $this->assertSame(1, $client->sendToUsers([], 'nobody', 1));
        $this->assertSame(2, $client->sendMsg('connect', 1)); // reserved: refused by the daemon
        $this->assertSame(3, $client->sendToUser(42, 'last', 2));
        // Another client on the shared connection keeps its own results.
        $this->assertSame(1, $other->sendToUser(42, 'sync', 3));

        $results = $client->flush();
        $this->assertSame([1, 0], \array_slice($results, 0, 2));
        $this->assertInstanceOf(\PushException::class, $results[2]);
        $this->assertSame(\PushException::INVALID_ARGUMENT, $results[2]->getCode());
        $this->assertSame(1, $results[3]);
        $this->assertSame([], $other->flush());
        foreach (['first', 'last', 'sync'] as $event) {
            $browsers->event('alice', $event);
        }
    }

    public function testManyPipelinedSendsGoOutInBatches(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $client = new Client(self::$daemon->socket, self::NS);
        $client->queue();
        $payload = str_repeat('x', 1000);
        for ($i = 0; $i < 300; $i++) {
            $client->sendToUser(42, 'batch', ['i' => $i, 'pad' => $payload]);
        }
        $this->assertSame(array_fill(0, 300, 1), $client->flush());
        for ($i = 0; $i < 300; $i++) {
            $this->assertSame($i, $browsers->event('alice', 'batch')['data']['i']);
        }
    }

    public function testADaemonRestartBetweenTwoSendsDeliversTheSecondOnce(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $client = new Client(self::$daemon->socket, self::NS);
        $connection = SharedConnections::get(self::$daemon->socket, Client::DEFAULT_TIMEOUT_MS);
        $this->assertSame(1, $client->sendToUser(42, 'before', 1));
        $browsers->event('alice', 'before');
        $connectsBefore = $connection->connects();

        self::$daemon->kill();
        self::$daemon->start();
        $browsers->waitForConnects(['alice'], 2);

        $this->assertSame(1, $client->sendToUser(42, 'after', 2));
        $this->assertSame(2, $browsers->event('alice', 'after')['data']);
        $this->assertSame([], $browsers->drain(), 'the message after the restart arrived twice');
        $this->assertSame($connectsBefore + 1, $connection->connects(), 'the client should have reconnected once');
    }

    public function testADeadDaemonFailsFastWithTheSocketPathInTheMessage(): void
    {
        $client = new Client(self::deadSocket(), self::NS);
        $started = microtime(true);
        try {
            $client->sendMsg('x', 1);
            $this->fail('no exception');
        } catch (\PushException $error) {
            $this->assertSame(\PushException::UNREACHABLE, $error->getCode());
            $this->assertStringContainsString(self::deadSocket(), $error->getMessage());
            $this->assertStringContainsString('No such file or directory (os error 2)', $error->getMessage());
        }
        $this->assertLessThan(1.0, microtime(true) - $started);
    }
}

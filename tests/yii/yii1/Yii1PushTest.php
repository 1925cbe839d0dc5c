<?php

declare(strict_types=1);

namespace PushYiiTests\Yii1;

use PushYiiTests\Support\FakeDaemon;
use PushYiiTests\TestCase;

require_once __DIR__ . '/../stubs/yii1.php';

/**
 * The Yii 1.1 component, configured as a site configures it, on the Yii 1.1
 * stand-ins, against the real daemon with real socket.io clients.
 */
final class Yii1PushTest extends TestCase
{
    protected function setUp(): void
    {
        \Yii::setPathOfAlias('application.extensions.push', \dirname(__DIR__, 3) . '/yii-component');
        \Yii::setLogger(new \CLogger());
    }

    /**
     * A fresh application with the Push component configured as the issue
     * shows, plus $config.
     *
     * @param array<string, mixed> $config
     */
    private function app(array $config = []): \CWebApplication
    {
        return new \CWebApplication(['components' => [
            'Push' => $config + [
                'class' => 'application.extensions.push.Push',
                'socket' => self::$daemon->socket,
                'namespace' => self::NS,
            ],
            'db' => ['class' => 'CDbConnection'],
        ]]);
    }

    /** @return list<array{0: string, 1: string, 2: string}> */
    private static function pushLogs(string $level = ''): array
    {
        return \Yii::getLogger()->getLogs($level, ['push']);
    }

    /** @dataProvider transports */
    public function testTheOldComponentsCallsWorkUnchanged(string $transport): void
    {
        $browsers = $this->browsers(['guest' => null]);
        $this->app($this->transportConfig($transport));
        $messageContent = ['text' => 'Hello from the old code', 'id' => 17];

        // The old elephant.io component's call sequence, verbatim.
        $push = \Yii::app()->Push;
        $push->setNameSpace('/message_namespace');
        $push->sendMsg('message_event_type', $messageContent);
        $push->close();

        $this->assertSame($transport, $push->getActiveTransport());
        $this->assertSame($messageContent, $browsers->event('guest', 'message_event_type')['data']);
        $this->assertSame([], self::pushLogs());
    }

    /** @dataProvider transports */
    public function testTheNewMethods(string $transport): void
    {
        $browsers = $this->browsers(['alice' => 42, 'bob' => 7, 'guest' => null]);
        $push = $this->app($this->transportConfig($transport))->Push;

        $this->assertSame(1, $push->sendToUser(42, 'private', ['for' => 'alice']));
        $this->assertSame(['for' => 'alice'], $browsers->event('alice', 'private')['data']);
        $this->assertSame(2, $push->sendToUsers([42, '7'], 'both', 'hi'));
        $browsers->event('alice', 'both');
        $browsers->event('bob', 'both');
        $this->assertSame(1, $push->sendToRoom('group:1', 'room', 'bob only'));
        $browsers->event('bob', 'room');
        $this->assertSame(2, $push->sendToRoom(['group:0', 'group:1'], 'rooms', 1));
        $browsers->event('alice', 'rooms');
        $browsers->event('bob', 'rooms');
        $this->assertSame(2, $push->sendMsg('not-bob', 1, [7]));
        $browsers->event('alice', 'not-bob');
        $browsers->event('guest', 'not-bob');
        $this->assertTrue($push->isOnline(42));
        $this->assertFalse($push->isOnline(404));
        $this->assertGreaterThanOrEqual(3, $push->stats()['namespaces'][self::NS]['connections']);
        $this->assertGreaterThan(0.0, $push->ping());

        $this->assertSame([], $browsers->drain(), 'a browser got a message that was not for it');
        $this->assertSame([], self::pushLogs());
    }

    /**
     * The page-render bootstrap: the offset PHP renders into the page lets
     * the page, connecting later, receive what was published in between,
     * and only that.
     *
     * @dataProvider transports
     */
    public function testPositionLetsAPageConnectingLaterReceiveWhatWasPublishedAfterIt(string $transport): void
    {
        $push = $this->app($this->transportConfig($transport))->Push;
        $push->sendToUser(42, 'news', 'before the page');
        $offset = $push->position();
        $this->assertIsString($offset);
        $this->assertSame(0, $push->sendToUser(42, 'news', "after the page, over {$transport}"));

        $browsers = $this->browsers(['page' => 42], self::NS, $offset);

        $this->assertSame(['recovered' => true, 'replayed' => 1, 'offset' => $offset], $browsers->recovery('page'));
        $this->assertSame("after the page, over {$transport}", $browsers->event('page', 'news')['data']);
        $push->sendToUser(42, 'marker', null);
        $browsers->event('page', 'marker');
        $this->assertSame([], $browsers->drain(0.0), 'the message before the page arrived too');
        $this->assertSame([], self::pushLogs());
    }

    /** @dataProvider transports */
    public function testPositionWithRecoveryOffIsLoggedAsRecoveryOffOrThrown(string $transport): void
    {
        $daemon = self::daemonWithoutRecovery();
        try {
            $push = $this->app(['socket' => $daemon->socket] + $this->transportConfig($transport))->Push;
            $this->assertNull($push->position());
            $logs = self::pushLogs(\CLogger::LEVEL_ERROR);
            $this->assertCount(1, $logs);
            $this->assertStringStartsWith('position failed: push-core refused the request: missed-message recovery is off', $logs[0][0]);
            $this->assertStringEndsWith('(PushException code ' . \PushException::RECOVERY_OFF . ')', $logs[0][0]);

            $push->throwOnError = true;
            try {
                $push->position();
                $this->fail('position() returned with recovery off and throwOnError');
            } catch (\PushException $error) {
                $this->assertSame(\PushException::RECOVERY_OFF, $error->getCode());
            }
        } finally {
            $daemon->stop();
        }
    }

    /** @return array<string, array{0: array<string, mixed>, 1: string}> */
    public function badConfigurations(): array
    {
        return [
            'namespace without a slash' => [['namespace' => 'message_namespace'], 'Push::$namespace must start with "/"'],
            'empty socket' => [['socket' => ' '], 'Push::$socket is empty'],
            'unknown transport' => [['transport' => 'redis'], "Push::\$transport must be one of auto, extension, ffi, php; got 'redis'"],
            'zero timeout' => [['timeoutMs' => 0], 'Push::$timeoutMs must be at least 1'],
            'ffi library missing' => [['transport' => 'ffi', 'ffiLibrary' => '/nowhere/libpush_ffi.so'], 'libpush_ffi.so was not found at /nowhere/libpush_ffi.so'],
        ];
    }

    /**
     * @dataProvider badConfigurations
     * @param array<string, mixed> $config
     */
    public function testInitRefusesABadConfigurationWithAClearMessage(array $config, string $message): void
    {
        $app = $this->app($config);
        try {
            $app->getComponent('Push');
            $this->fail('init() accepted the configuration');
        } catch (\CException $error) {
            $this->assertStringContainsString($message, $error->getMessage());
        }
    }

    public function testAssigningTheNamespacePropertyRedirectsLaterSends(): void
    {
        $browsers = $this->browsers(['guest' => null]);
        $push = $this->app(['namespace' => '/'])->Push;
        $this->assertSame(0, $push->sendMsg('elsewhere', 1));
        $push->namespace = self::NS;
        $this->assertSame(1, $push->sendMsg('here', 2));
        $this->assertSame(2, $browsers->event('guest', 'here')['data']);
    }

    public function testInitCallsTheParentInit(): void
    {
        $this->assertTrue($this->app()->Push->getIsInitialized());
    }

    /** @dataProvider transports */
    public function testAFailedPushIsLoggedAndReturnsZero(string $transport): void
    {
        $push = $this->app(['socket' => self::deadSocket()] + $this->transportConfig($transport))->Push;
        $started = microtime(true);

        $this->assertSame(0, $push->sendMsg('e', 1));
        $this->assertSame(0, $push->sendToUser(42, 'e', 1));
        $this->assertFalse($push->isOnline(42));
        $this->assertSame([], $push->stats());
        $this->assertNull($push->ping());

        $this->assertLessThan(1.0, microtime(true) - $started, 'a dead daemon must not hold the page');
        $logs = self::pushLogs(\CLogger::LEVEL_ERROR);
        $this->assertGreaterThanOrEqual(3, \count($logs));
        $this->assertStringStartsWith('sendMsg failed: cannot connect to push-core at ' . self::deadSocket(), $logs[0][0]);
        $this->assertStringEndsWith('(PushException code 1)', $logs[0][0]);
    }

    /**
     * The component answers lastCountPartial() from its client, and false
     * where it answered without a count. The daemon is a fake whose every
     * count is partial (a real cluster is in protocol/ClusterPartialTest).
     *
     * @dataProvider transports
     */
    public function testLastCountPartialFollowsTheLastCount(string $transport): void
    {
        $this->requireTransport($transport);
        $fake = new FakeDaemon('partial');
        try {
            $push = $this->app(['socket' => $fake->socket] + $this->transportConfig($transport))->Push;
            $this->assertFalse($push->lastCountPartial(), 'nothing asked yet');
            $this->assertSame(7, $push->sendMsg('e', 1));
            $this->assertTrue($push->lastCountPartial());
            $this->assertSame(0, $push->sendToUsers([], 'e', 1));
            $this->assertFalse($push->lastCountPartial(), 'answered without asking');
            $this->assertTrue($push->isOnline(42));
            $this->assertTrue($push->lastCountPartial());

            $push->defer = true;
            $this->assertSame(0, $push->sendToUser(42, 'e', 1));
            $this->assertFalse($push->lastCountPartial(), 'a deferred send has no count yet');
            $this->assertSame([7], $push->flush());
            $this->assertTrue($push->lastCountPartial(), 'the flushed count was partial');

            $failing = $this->app(['socket' => self::deadSocket()] + $this->transportConfig($transport))->Push;
            $this->assertSame(0, $failing->sendMsg('e', 1));
            $this->assertFalse($failing->lastCountPartial(), 'a failed call has no count');
        } finally {
            $fake->stop();
        }
    }

    /** @dataProvider transports */
    public function testThrowOnErrorThrowsThePushException(string $transport): void
    {
        $push = $this->app(['socket' => self::deadSocket(), 'throwOnError' => true] + $this->transportConfig($transport))->Push;
        try {
            $push->sendMsg('e', 1);
            $this->fail('no exception');
        } catch (\PushException $error) {
            $this->assertSame(\PushException::UNREACHABLE, $error->getCode());
        }
        $this->assertSame([], self::pushLogs());
    }

    /** @dataProvider transports */
    public function testDeferredPublishesGoOutAtTheEndOfTheRequest(string $transport): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $app = $this->app(['defer' => true] + $this->transportConfig($transport));
        $push = $app->Push;

        $this->assertSame(0, $push->sendToUser(42, 'first', 1));
        $push->setNamespace('/');
        $this->assertSame(0, $push->sendMsg('elsewhere', 2)); // another namespace: alice is not there
        $push->setNamespace(self::NS);
        $this->assertSame(0, $push->sendToUser(42, 'second', 2));
        $push->close(); // the old code's close() does not lose deferred publishes
        $this->assertSame([], $browsers->drain(0.3), 'deferred publishes went out before the end of the request');

        $app->end(0, false);

        $this->assertSame(1, $browsers->event('alice', 'first')['data']);
        $this->assertSame(2, $browsers->event('alice', 'second')['data']);
        $this->assertSame([], $browsers->drain(0.2));
        $this->assertSame([], self::pushLogs());
    }

    public function testFlushSendsTheDeferredPublishesNow(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $push = $this->app(['defer' => true])->Push;
        $push->sendToUser(42, 'a', 1);
        $push->sendToUsers([], 'nobody', 1);
        $push->sendMsg('connect', 1); // reserved name: refused by the daemon

        $results = $push->flush();

        $this->assertSame([1, 0], \array_slice($results, 0, 2));
        $this->assertSame(\PushException::INVALID_ARGUMENT, $results[2]->getCode());
        $browsers->event('alice', 'a');
        $this->assertCount(1, self::pushLogs(\CLogger::LEVEL_ERROR));
        $this->assertSame([], $push->flush(), 'a second flush has nothing left to send');
    }

    public function testDeferredFailuresAreLoggedNotThrown(): void
    {
        $app = $this->app(['defer' => true, 'throwOnError' => true, 'socket' => self::deadSocket()]);
        $app->Push->sendMsg('a', 1);
        $app->Push->sendMsg('b', 2);

        $app->end(0, false);

        $logs = self::pushLogs(\CLogger::LEVEL_ERROR);
        $this->assertCount(2, $logs);
        $this->assertStringStartsWith('deferred sendMsg failed: cannot connect to push-core', $logs[0][0]);
    }

    public function testSendAfterCommitWaitsForTheCommit(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $app = $this->app();
        $push = $app->Push;

        $push->transaction(function (\CDbConnection $db) use ($push, $browsers): void {
            $push->sendAfterCommit(fn (\Push $p) => $p->sendToUser(42, 'order_saved', ['id' => 5]));
            $this->assertSame([], $browsers->drain(0.3), 'sent before the commit');
        });

        $this->assertSame(['id' => 5], $browsers->event('alice', 'order_saved')['data']);
        $this->assertSame(['begin', 'commit'], $app->db->log);
    }

    public function testRollbackDropsTheMessage(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $app = $this->app();
        $push = $app->Push;

        try {
            $push->transaction(function () use ($push): void {
                $push->sendAfterCommit(fn (\Push $p) => $p->sendToUser(42, 'order_saved', 1));
                throw new \RuntimeException('the order could not be saved');
            });
            $this->fail('the exception was swallowed');
        } catch (\RuntimeException $error) {
            $this->assertSame('the order could not be saved', $error->getMessage());
        }
        // The explicit form: begin, then Push::rollback().
        $app->db->beginTransaction();
        $push->sendAfterCommit(fn (\Push $p) => $p->sendToUser(42, 'order_saved', 2));
        $push->rollback();
        $app->end(0, false);

        $this->assertSame([], $browsers->drain(0.5));
        $this->assertSame(['begin', 'rollback', 'begin', 'rollback'], $app->db->log);
        $this->assertSame([], self::pushLogs());
    }

    public function testACommitTheComponentDidNotSeeDropsTheMessageWithAWarning(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $app = $this->app();
        $transaction = $app->db->beginTransaction();
        $app->Push->sendAfterCommit(fn (\Push $p) => $p->sendToUser(42, 'order_saved', 1));
        $transaction->commit(); // not through Push::commit(): Yii 1.1 tells nobody

        $app->end(0, false);

        $this->assertSame([], $browsers->drain(0.5));
        $warnings = self::pushLogs(\CLogger::LEVEL_WARNING);
        $this->assertCount(1, $warnings);
        $this->assertStringContainsString('1 push(es) waiting for a commit were dropped', $warnings[0][0]);
    }

    public function testSendAfterCommitWithoutATransactionSendsAtOnce(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $this->app()->Push->sendAfterCommit(fn (\Push $p) => $p->sendToUser(42, 'now', 1));
        $this->assertSame(1, $browsers->event('alice', 'now')['data']);
    }

    public function testCommittedSendsAreDeferredToTheEndOfTheRequestWhenDeferIsOn(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $app = $this->app(['defer' => true]);
        $app->db->beginTransaction();
        $app->Push->sendAfterCommit(fn (\Push $p) => $p->sendToUser(42, 'late', 1));
        $app->Push->commit();
        $this->assertSame([], $browsers->drain(0.3));

        $app->end(0, false);

        $browsers->event('alice', 'late');
    }
}

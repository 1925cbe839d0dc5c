<?php

declare(strict_types=1);

namespace PushYiiTests\Yii2;

use PushCore\Yii\Yii2\Push;
use PushYiiTests\TestCase;
use yii\base\InvalidConfigException;
use yii\db\Connection;
use yii\log\Logger;

require_once __DIR__ . '/../stubs/yii2.php';

/**
 * The Yii 2 component, configured as a site configures it, on the Yii 2
 * stand-ins, against the real daemon with real socket.io clients.
 */
final class Yii2PushTest extends TestCase
{
    protected static function siteFrontController(): string
    {
        return __DIR__ . '/../site/yii2.php';
    }

    protected function setUp(): void
    {
        \Yii::setLogger(new Logger());
    }

    /** @param array<string, mixed> $config */
    private function app(array $config = [], string $class = \yii\web\Application::class): \yii\base\Application
    {
        return new $class(['components' => [
            'push' => $config + [
                'class' => Push::class,
                'socket' => self::$daemon->socket,
                'namespace' => self::NS,
            ],
            'db' => ['class' => Connection::class],
        ]]);
    }

    /** @return list<array{0: string, 1: int, 2: string}> */
    private static function pushLogs(int $level): array
    {
        return array_values(array_filter(
            \Yii::getLogger()->messages,
            static fn (array $m): bool => $m[1] === $level && $m[2] === 'push',
        ));
    }

    /** @dataProvider transports */
    public function testTheApi(string $transport): void
    {
        $browsers = $this->browsers(['alice' => 42, 'bob' => 7]);
        $push = $this->app($this->transportConfig($transport))->get('push');

        $this->assertSame($transport, $push->getActiveTransport());
        $push->setNameSpace(self::NS);
        $this->assertSame(2, $push->sendMsg('message_event_type', ['n' => 1]));
        $push->close();
        $this->assertSame(1, \Yii::$app->push->sendToUser(42, 'private', 'alice'));
        $this->assertSame(2, \Yii::$app->push->sendToUsers([42, 7], 'both', 1));
        $this->assertSame(1, \Yii::$app->push->sendToRoom('group:1', 'room', 'bob'));
        $this->assertTrue(\Yii::$app->push->isOnline(7));
        $this->assertArrayHasKey('connections', \Yii::$app->push->stats());
        $this->assertGreaterThan(0.0, \Yii::$app->push->ping());

        $browsers->event('alice', 'message_event_type');
        $browsers->event('bob', 'message_event_type');
        $this->assertSame('alice', $browsers->event('alice', 'private')['data']);
        $browsers->event('alice', 'both');
        $browsers->event('bob', 'both');
        $this->assertSame('bob', $browsers->event('bob', 'room')['data']);
        $this->assertSame([], $browsers->drain());
    }

    /** @dataProvider transports */
    public function testPositionLetsAPageConnectingLaterReceiveWhatWasPublishedAfterIt(string $transport): void
    {
        $push = $this->app($this->transportConfig($transport))->get('push');
        $push->sendToUser(7, 'news', 'before the page');
        $offset = $push->position(self::NS);
        $this->assertIsString($offset);
        $this->assertSame($offset, $push->position());
        $this->assertSame(0, $push->sendToUser(7, 'news', "after the page, over {$transport}"));

        $browsers = $this->browsers(['page' => 7], self::NS, $offset);

        $this->assertSame(['recovered' => true, 'replayed' => 1, 'offset' => $offset], $browsers->recovery('page'));
        $this->assertSame("after the page, over {$transport}", $browsers->event('page', 'news')['data']);
        $push->sendToUser(7, 'marker', null);
        $browsers->event('page', 'marker');
        $this->assertSame([], $browsers->drain(0.0), 'the message before the page arrived too');
        $this->assertSame([], self::pushLogs(Logger::LEVEL_ERROR));
    }

    /** @dataProvider transports */
    public function testPositionWithRecoveryOffIsLoggedOrThrown(string $transport): void
    {
        $daemon = self::daemonWithoutRecovery();
        try {
            $push = $this->app(['socket' => $daemon->socket] + $this->transportConfig($transport))->get('push');
            $this->assertNull($push->position());
            $logs = self::pushLogs(Logger::LEVEL_ERROR);
            $this->assertCount(1, $logs);
            $this->assertStringEndsWith('(PushException code ' . \PushException::RECOVERY_OFF . ')', $logs[0][0]);

            $push->throwOnError = true;
            $this->expectException(\PushException::class);
            $this->expectExceptionCode(\PushException::RECOVERY_OFF);
            $push->position();
        } finally {
            $daemon->stop();
        }
    }

    public function testInitRefusesABadConfiguration(): void
    {
        $this->expectException(InvalidConfigException::class);
        $this->expectExceptionMessage("Push::\$transport must be one of auto, extension, ffi, php; got 'http'");
        $this->app(['transport' => 'http'])->get('push');
    }

    /**
     * A configuration carried over from the elephant.io component keeps
     * working: host and port are ignored, with one warning for the
     * component however many pushes it makes, and close() does not end it.
     */
    public function testTheElephantIoHostAndPortAreIgnoredWithOneWarning(): void
    {
        $browsers = $this->browsers(['page' => null]);
        $push = $this->app(['host' => 'http://127.0.0.1', 'port' => 8000])->get('push');

        $this->assertSame(1, $push->sendMsg('message_event_type', 1));
        $push->close();
        $this->assertSame(1, $push->setNameSpace(self::NS)->sendMsg('message_event_type', 2));

        $this->assertSame(1, $browsers->event('page', 'message_event_type')['data']);
        $this->assertSame(2, $browsers->event('page', 'message_event_type')['data']);
        $warnings = self::pushLogs(Logger::LEVEL_WARNING);
        $this->assertCount(1, $warnings);
        $this->assertSame(
            Push::class . ": the elephant.io settings host and port are deprecated and ignored (host 'http://127.0.0.1', port 8000):"
            . ' push-core is reached over its Unix socket ' . self::$daemon->socket . "; remove them from the component's configuration"
            . ' (docs/yii.md, "Coming from elephant.io")',
            $warnings[0][0],
        );
        $this->assertSame([], self::pushLogs(Logger::LEVEL_ERROR));
    }

    public function testAFailedPushIsLoggedAndReturnsZero(): void
    {
        $push = $this->app(['socket' => self::deadSocket()])->get('push');
        $this->assertSame(0, $push->sendToUser(42, 'e', 1));
        $logs = self::pushLogs(Logger::LEVEL_ERROR);
        $this->assertCount(1, $logs);
        $this->assertStringStartsWith('sendToUser failed: cannot connect to push-core at ' . self::deadSocket(), $logs[0][0]);
    }

    public function testThrowOnErrorThrowsThePushException(): void
    {
        $push = $this->app(['socket' => self::deadSocket(), 'throwOnError' => true])->get('push');
        $this->expectException(\PushException::class);
        $this->expectExceptionCode(\PushException::UNREACHABLE);
        $push->sendToUser(42, 'e', 1);
    }

    /** @dataProvider transports */
    public function testDeferredPublishesGoOutAfterTheResponseWasSent(string $transport): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $app = $this->app(['defer' => true] + $this->transportConfig($transport));
        $this->assertSame(0, $app->get('push')->sendToUser(42, 'deferred', 1));
        $this->assertSame(0, $app->get('push')->sendToUser(42, 'deferred', 2));
        $app->trigger(\yii\base\Application::EVENT_AFTER_REQUEST);
        $this->assertSame([], $browsers->drain(0.3), 'sent before the response went out');

        $app->getResponse()->send();

        $this->assertSame(1, $browsers->event('alice', 'deferred')['data']);
        $this->assertSame(2, $browsers->event('alice', 'deferred')['data']);
        $this->assertSame([], self::pushLogs(Logger::LEVEL_ERROR));
    }

    public function testAConsoleApplicationSendsDeferredPublishesAtTheEndOfTheRequest(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $app = $this->app(['defer' => true], \yii\console\Application::class);
        $app->get('push')->sendToUser(42, 'from-console', 1);
        $this->assertSame([], $browsers->drain(0.3));

        $app->finishRequest();

        $browsers->event('alice', 'from-console');
    }

    public function testSendAfterCommitFollowsTheConnectionsCommitEvent(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $app = $this->app();
        $db = $app->get('db');

        $db->transaction(function () use ($app, $browsers, $db): void {
            $app->get('push')->sendAfterCommit(fn (Push $push) => $push->sendToUser(42, 'saved', 'outer'));
            // A savepoint committing is not the commit.
            $inner = $db->beginTransaction();
            $app->get('push')->sendAfterCommit(fn (Push $push) => $push->sendToUser(42, 'saved', 'inner'));
            $inner->commit();
            $this->assertSame([], $browsers->drain(0.3), 'sent before the outer commit');
        });

        $this->assertSame('outer', $browsers->event('alice', 'saved')['data']);
        $this->assertSame('inner', $browsers->event('alice', 'saved')['data']);
        $this->assertSame(['begin', 'savepoint 1', 'release savepoint 1', 'commit'], $db->log);
    }

    public function testRollbackDropsTheMessage(): void
    {
        $browsers = $this->browsers(['alice' => 42]);
        $app = $this->app();
        $db = $app->get('db');
        try {
            $db->transaction(function () use ($app): void {
                $app->get('push')->sendAfterCommit(fn (Push $push) => $push->sendToUser(42, 'saved', 1));
                throw new \RuntimeException('validation failed');
            });
        } catch (\RuntimeException) {
        }
        $transaction = $db->beginTransaction();
        $app->get('push')->sendAfterCommit(fn (Push $push) => $push->sendToUser(42, 'saved', 2));
        $transaction->rollBack();
        // A later transaction that commits must not bring them back.
        $db->transaction(fn () => null);
        $app->getResponse()->send();

        $this->assertSame([], $browsers->drain(0.5));
        $this->assertSame([], self::pushLogs(Logger::LEVEL_WARNING));
    }
}

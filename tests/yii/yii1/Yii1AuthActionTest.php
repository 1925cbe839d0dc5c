<?php

declare(strict_types=1);

namespace PushYiiTests\Yii1;

use PushTests\Harness\Net;
use PushYiiTests\TestCase;

require_once __DIR__ . '/../stubs/yii1.php';

/**
 * PushAuthAction for Yii 1.1, served by `php -S` on the stand-ins
 * (tests/yii/site/yii1.php) and wired as a live daemon's --auth-url: a
 * browser carrying a user's session cookie gets that user's private
 * messages, and nobody else does.
 */
final class Yii1AuthActionTest extends TestCase
{
    public function testALoggedInUserGets200WithTheirIdAndRooms(): void
    {
        $cookie = self::$site->login(42);
        $response = Net::get(self::$site->url('/push/auth'), ['Cookie' => $cookie, 'X-Push-Namespace' => self::NS]);

        $this->assertSame(200, $response['status']);
        $this->assertContains('Content-Type: application/json; charset=utf-8', $response['headers']);
        $this->assertSame(['user_id' => '42', 'rooms' => ['group:0', 'ns:' . self::NS]], json_decode($response['body'], true));
    }

    public function testAGuestGets401(): void
    {
        $response = Net::get(self::$site->url('/push/auth'), ['X-Push-Namespace' => self::NS]);
        $this->assertSame(401, $response['status']);

        $unknownSession = Net::get(self::$site->url('/push/auth'), ['Cookie' => 'PHPSESSID=nosuchsession']);
        $this->assertSame(401, $unknownSession['status']);
    }

    public function testAPrivateMessageReachesOnlyTheBrowserWithThatUsersSession(): void
    {
        $browsers = $this->browsers(['alice' => 42, 'bob' => 7, 'guest' => null]);
        new \CWebApplication(['components' => ['Push' => [
            'class' => 'application.extensions.push.Push',
            'socket' => self::$daemon->socket,
            'namespace' => self::NS,
        ]]]);
        \Yii::setPathOfAlias('application.extensions.push', \dirname(__DIR__, 3) . '/yii-component');

        $this->assertSame(1, \Yii::app()->Push->sendToUser(42, 'private', 'only for 42'));
        $this->assertSame(2, \Yii::app()->Push->sendToRoom('ns:' . self::NS, 'members', 'logged-in users'));

        $this->assertSame('only for 42', $browsers->event('alice', 'private')['data']);
        $browsers->event('alice', 'members');
        $browsers->event('bob', 'members');
        $this->assertSame([], $browsers->drain(), 'the private message or the room message reached someone else');
    }
}

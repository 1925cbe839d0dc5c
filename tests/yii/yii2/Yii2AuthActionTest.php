<?php

declare(strict_types=1);

namespace PushYiiTests\Yii2;

use PushCore\Yii\Yii2\Push;
use PushTests\Harness\Net;
use PushYiiTests\TestCase;

require_once __DIR__ . '/../stubs/yii2.php';

/**
 * PushAuthAction for Yii 2, served by `php -S` on the stand-ins
 * (tests/yii/site/yii2.php) and wired as a live daemon's --auth-url.
 */
final class Yii2AuthActionTest extends TestCase
{
    protected static function siteFrontController(): string
    {
        return __DIR__ . '/../site/yii2.php';
    }

    public function testALoggedInUserGets200WithTheirIdAndRooms(): void
    {
        $cookie = self::$site->login(7);
        $response = Net::get(self::$site->url('/push/auth'), ['Cookie' => $cookie, 'X-Push-Namespace' => self::NS]);

        $this->assertSame(200, $response['status'], $response['body'] . self::$site->log());
        $this->assertSame(['user_id' => '7', 'rooms' => ['group:1', 'ns:' . self::NS]], json_decode($response['body'], true));
    }

    public function testAGuestGets401(): void
    {
        $this->assertSame(401, Net::get(self::$site->url('/push/auth'))['status']);
    }

    public function testAPrivateMessageReachesOnlyTheBrowserWithThatUsersSession(): void
    {
        $browsers = $this->browsers(['alice' => 42, 'bob' => 7, 'guest' => null]);
        new \yii\web\Application(['components' => ['push' => [
            'class' => Push::class,
            'socket' => self::$daemon->socket,
            'namespace' => self::NS,
        ]]]);

        $this->assertSame(1, \Yii::$app->push->sendToUser(7, 'private', 'only for 7'));

        $this->assertSame('only for 7', $browsers->event('bob', 'private')['data']);
        $this->assertSame([], $browsers->drain(), 'the private message reached someone else');
    }
}

<?php

declare(strict_types=1);

namespace PushTests;

use PushTests\Support\Fpm;
use PushTests\Support\PushTestCase;

/**
 * Under php-fpm the connection to the daemon outlives the request: one
 * worker serving 100 requests connects once, which the daemon's STATS show.
 */
final class FpmTest extends PushTestCase
{
    private const REQUESTS = 100;

    private ?Fpm $fpm = null;

    protected function tearDown(): void
    {
        $this->fpm?->stop();
        parent::tearDown();
    }

    public function testOneWorkerReusesOneConnectionForAHundredRequests(): void
    {
        $this->startDaemon();
        $browsers = $this->openBrowsers(['guest' => []]);
        $this->fpm = new Fpm();
        $observer = $this->client();
        $observer->ping();
        $acceptedBefore = $observer->stats()['publishers']['accepted_total'];

        $workers = [];
        for ($i = 0; $i < self::REQUESTS; $i++) {
            [$pid, $reached] = explode(' ', $this->fpm->get(__DIR__ . '/fixtures/fpm-publish.php', http_build_query([
                'socket' => $this->daemon->socket,
                'i' => $i,
            ])));
            self::assertSame('1', $reached, "request $i");
            $workers[$pid] = true;
        }

        self::assertCount(1, $workers, 'one worker served every request');
        self::assertSame($acceptedBefore + 1, $observer->stats()['publishers']['accepted_total']);
        $this->settle(['guest']);
        self::assertSame(range(0, self::REQUESTS - 1), $browsers->received('guest', 'page'));
    }

    public function testWithPersistenceOffEachRequestConnectsAgain(): void
    {
        $this->startDaemon();
        $this->fpm = new Fpm(['push.persistent' => '0']);
        $observer = $this->client();
        $observer->ping();
        $acceptedBefore = $observer->stats()['publishers']['accepted_total'];

        for ($i = 0; $i < 5; $i++) {
            $this->fpm->get(__DIR__ . '/fixtures/fpm-publish.php', http_build_query(['socket' => $this->daemon->socket, 'i' => $i]));
        }

        self::assertSame($acceptedBefore + 5, $observer->stats()['publishers']['accepted_total']);
        self::assertSame(1, $observer->stats()['publishers']['connected'], 'only the observer is still connected');
    }
}

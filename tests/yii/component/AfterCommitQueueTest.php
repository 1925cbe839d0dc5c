<?php

declare(strict_types=1);

namespace PushYiiTests\Component;

use PHPUnit\Framework\TestCase;
use PushCore\Yii\AfterCommitQueue;

/**
 * The queue behind sendAfterCommit(): a commit releases the sends of its own
 * transaction, in order, and only those. The components' suites cover it
 * with one transaction at a time; this covers two open at once (two
 * connections), which they cannot show.
 */
final class AfterCommitQueueTest extends TestCase
{
    public function testACommitReleasesOnlyItsOwnSendsInOrder(): void
    {
        $queue = new AfterCommitQueue();
        $orders = new \stdClass();
        $audit = new \stdClass();
        $queue->wait($orders, static fn () => 'order 1');
        $queue->wait($audit, static fn () => 'audit');
        $queue->wait($orders, static fn () => 'order 2');

        $released = array_map(static fn (callable $send) => $send(), $queue->release($orders));

        $this->assertSame(['order 1', 'order 2'], $released);
        $this->assertSame([], $queue->release($orders), 'released twice');
        $this->assertSame(1, $queue->discardAll(), 'the other transaction\'s send should still wait');
    }

    public function testARollbackForgetsOnlyItsOwnSends(): void
    {
        $queue = new AfterCommitQueue();
        $rolledBack = new \stdClass();
        $committed = new \stdClass();
        $queue->wait($rolledBack, static fn () => 'dropped');
        $queue->wait($committed, static fn () => 'kept');

        $queue->discard($rolledBack);

        $this->assertSame([], $queue->release($rolledBack));
        $this->assertSame(['kept'], array_map(static fn (callable $send) => $send(), $queue->release($committed)));
        $this->assertSame(0, $queue->discardAll());
    }
}

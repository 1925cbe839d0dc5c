<?php

declare(strict_types=1);

namespace PushCore\Yii;

/**
 * Sends that wait for a database transaction to commit
 * (sendAfterCommit()), each kept with the transaction it waits on.
 *
 * The scope a send waits on is whatever object the framework's commit
 * names: the transaction in Yii 1.1, the connection in Yii 2. The
 * component learns of commits and rollbacks and tells this queue; the
 * queue only keeps the sends in order and hands out the ones that may go.
 */
final class AfterCommitQueue
{
    /** @var list<array{scope: object, send: callable}> sends waiting, in the order they were made */
    private array $waiting = [];

    /**
     * Keeps $send until $scope commits or rolls back.
     *
     * @param object $scope the transaction (Yii 1.1) or connection (Yii 2) it waits on
     * @param callable $send makes the sends once the commit happened
     */
    public function wait(object $scope, callable $send): void
    {
        $this->waiting[] = ['scope' => $scope, 'send' => $send];
    }

    /**
     * $scope committed: removes its sends and returns them, in the order
     * they were made, for the caller to run.
     *
     * @return list<callable>
     */
    public function release(object $scope): array
    {
        $released = [];
        foreach ($this->waiting as $waiting) {
            if ($waiting['scope'] === $scope) {
                $released[] = $waiting['send'];
            }
        }
        $this->discard($scope);
        return $released;
    }

    /** $scope rolled back: forgets its sends. */
    public function discard(object $scope): void
    {
        $this->waiting = array_values(array_filter(
            $this->waiting,
            static fn (array $waiting): bool => $waiting['scope'] !== $scope,
        ));
    }

    /**
     * Forgets every waiting send, whatever its scope.
     *
     * @return int how many were forgotten
     */
    public function discardAll(): int
    {
        $count = \count($this->waiting);
        $this->waiting = [];
        return $count;
    }
}

<?php

declare(strict_types=1);

namespace PushCore\Yii;

use PushException;

/**
 * The publishes a component holds back while `defer` is on, and how they go
 * out: as one pipelined batch through the client's queue() and flush(),
 * every frame written before any reply is read, so the batch costs about
 * one round trip however long it is. (The FFI client cannot pipeline:
 * between its queue() and flush() it sends each publish at once and keeps
 * the result for flush(), so the results are the same.)
 *
 * Each publish remembers the namespace it was made in, since the component
 * may switch namespaces between publishes. What to do with a failure (log
 * it, throw it) is the component's error policy, not this queue's: send()
 * reports every result and decides nothing.
 */
final class DeferredPublishes
{
    /**
     * @var list<array{namespace: string, method: string, args: list<mixed>}>
     * publishes waiting, in the order they were made
     */
    private array $waiting = [];

    /**
     * Holds back one publish.
     *
     * @param string $namespace the namespace it was made in
     * @param string $method the PushClient method: sendMsg, sendToUser, sendToUsers or sendToRoom
     * @param list<mixed> $args that method's arguments
     */
    public function add(string $namespace, string $method, array $args): void
    {
        $this->waiting[] = ['namespace' => $namespace, 'method' => $method, 'args' => $args];
    }

    /** Whether no publish is waiting. */
    public function isEmpty(): bool
    {
        return $this->waiting === [];
    }

    /**
     * Sends every waiting publish as one pipelined batch and empties the
     * queue, whatever happens. The client's namespace is switched to each
     * publish's own and left at the last one's.
     *
     * A publish that fails before it is written (too large, a bad argument)
     * fails alone; the others still go. When the client cannot be had or
     * the connection fails, every publish without a result gets that error.
     *
     * @param callable(): (\PushClient|Publisher) $client gives the client to send with
     * @return list<array{method: string, result: int|PushException}> one per
     *         publish, in order: the connections it reached, or its failure
     */
    public function send(callable $client): array
    {
        $batch = $this->waiting;
        $this->waiting = [];
        if ($batch === []) {
            return [];
        }
        $results = [];
        try {
            $publisher = $client();
            // Positions in flush()'s answer, which has only what was queued.
            $queued = [];
            $publisher->queue();
            foreach ($batch as $index => $publish) {
                try {
                    $publisher->setNamespace($publish['namespace']);
                    $publisher->{$publish['method']}(...$publish['args']);
                    $queued[] = $index;
                } catch (PushException $error) {
                    // Known before writing (daemon down, too large): this
                    // one failed, the others may still go.
                    $results[$index] = $error;
                }
            }
            foreach ($publisher->flush() as $position => $result) {
                $results[$queued[$position]] = $result;
            }
        } catch (PushException $error) {
            foreach (array_keys($batch) as $index) {
                $results[$index] ??= $error;
            }
        }
        $sent = [];
        foreach ($batch as $index => $publish) {
            $sent[] = ['method' => $publish['method'], 'result' => $results[$index]];
        }
        return $sent;
    }
}

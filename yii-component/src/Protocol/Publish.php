<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * One message for the browsers: an event with a JSON payload, to a target
 * within a namespace.
 *
 * Who receives it: with no users and no rooms, everyone connected to the
 * namespace; otherwise the union of those users' connections and those
 * rooms' members. The connections of $exceptUsers are removed in every case.
 */
final class Publish
{
    /**
     * @param list<string> $users
     * @param list<string> $rooms
     * @param list<string> $exceptUsers
     * @param string $payload JSON text, as json_encode() wrote it
     */
    public function __construct(
        public readonly string $namespace,
        public readonly string $event,
        public readonly array $users,
        public readonly array $rooms,
        public readonly array $exceptUsers,
        public readonly string $payload,
    ) {
    }
}

<?php

declare(strict_types=1);

namespace PushCore\Yii;

use PushException;

/**
 * The API of the extension's PushClient class, for the clients written here
 * that stand in for it: the pure-PHP Protocol\Client and the FFI client.
 *
 * The extension's \PushClient cannot declare that it implements this
 * interface, but it has every one of these methods with these signatures;
 * the components accept either (see Transport).
 */
interface Publisher
{
    public function setNamespace(string $ns): static;

    /**
     * Everyone connected to the namespace, minus $except's connections.
     *
     * @param list<string|int>|null $except
     * @return int the number of connections the daemon handed the message to
     * @throws PushException
     */
    public function sendMsg(string $event, mixed $msg, ?array $except = null): int;

    /**
     * @param string|int $user
     * @param list<string|int>|null $except
     * @throws PushException
     */
    public function sendToUser(mixed $user, string $event, mixed $msg, ?array $except = null): int;

    /**
     * @param list<string|int> $users
     * @param list<string|int>|null $except
     * @throws PushException
     */
    public function sendToUsers(array $users, string $event, mixed $msg, ?array $except = null): int;

    /**
     * @param string|int|list<string|int> $rooms
     * @param list<string|int>|null $except
     * @throws PushException
     */
    public function sendToRoom(mixed $rooms, string $event, mixed $msg, ?array $except = null): int;

    /**
     * @param string|int $user
     * @throws PushException
     */
    public function isOnline(mixed $user): bool;

    /**
     * Whether the count behind the last sendMsg()/sendTo*(), isOnline() or
     * flush() is partial: push-core runs as a cluster and a node did not
     * answer in time, so the number (or isOnline()'s false) leaves it out.
     * After flush(), true when any of its counts was. False against a single
     * daemon, after a call that threw, and for a queued send.
     */
    public function lastCountPartial(): bool;

    /**
     * The namespace's current recovery offset, for the page to render: a
     * browser whose first connect sends it (`auth: {offset}`) receives every
     * message published after this call.
     *
     * @param string|null $ns null: the client's namespace
     * @throws PushException RECOVERY_OFF when the daemon runs without recovery
     */
    public function position(?string $ns = null): string;

    /**
     * @return array<string, mixed>
     * @throws PushException
     */
    public function stats(): array;

    /**
     * One round trip to the daemon, in seconds.
     *
     * @throws PushException
     */
    public function ping(): float;

    public function close(): void;

    /** Pipelines the following sends until flush(); each returns its index in flush()'s result. */
    public function queue(): static;

    /**
     * Writes every queued publish and returns one result per publish, in
     * order: the number of connections reached, or the PushException it
     * failed with.
     *
     * @return list<int|PushException>
     */
    public function flush(): array;
}

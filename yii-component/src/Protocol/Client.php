<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

use PushCore\Yii\Publisher;
use PushException;

/**
 * The extension's PushClient, in pure PHP.
 *
 * Same constructor, same methods, same return values, and on every failure
 * the same PushException with the same code and message, so code written
 * against the extension runs unchanged where it is not installed, just
 * slower. The argument rules (php-ext/src/target.rs), the JSON encoding
 * (json_encode with its default flags) and the order of the checks (target
 * arguments, then the message, then the daemon) are the extension's too.
 *
 * The one difference is how long the connection lives: see
 * SharedConnections.
 */
final class Client implements Publisher
{
    /** Sent in the HELLO, after "push-core-yii/". */
    public const VERSION = '0.1.0';

    /** The extension's default for push.timeout_ms. */
    public const DEFAULT_TIMEOUT_MS = 1000;

    private static int $nextOwner = 1;

    private readonly string $socketPath;
    private readonly int $timeoutMs;
    private string $namespace;
    private readonly int $owner;
    /** True between queue() and flush(). */
    private bool $queueing = false;
    /** Publishes this object queued since its last flush(). */
    private int $queued = 0;
    /** Whether the count behind the last counting call was partial; see lastCountPartial(). */
    private bool $lastCountPartial = false;

    /**
     * @param string|null $socket the daemon's socket; null takes the
     *        push.socket INI setting when the extension defines it, else
     *        /run/push-core/push.sock
     * @param int|null $timeoutMs bounds each connect, write and read; null
     *        takes push.timeout_ms when the extension defines it, else 1000
     */
    public function __construct(?string $socket = null, string $namespace = '/', ?int $timeoutMs = null)
    {
        self::checkUtf8($namespace, 'namespace');
        if ($socket !== null) {
            self::checkUtf8($socket, 'socket');
        }
        $this->socketPath = $socket ?? self::defaultSocket();
        $this->timeoutMs = $timeoutMs ?? self::defaultTimeoutMs();
        $this->namespace = $namespace;
        $this->owner = self::$nextOwner++;
    }

    public function __destruct()
    {
        // Publishes queued and never flushed are flushed here, so they are
        // not left waiting on the shared connection. As in the extension,
        // failures become a warning: there is no caller left to throw to.
        if ($this->queued === 0) {
            return;
        }
        $failed = array_values(array_filter($this->takeResults(), static fn ($r): bool => $r instanceof Failure));
        if ($failed !== []) {
            trigger_error(
                'PushClient was destroyed with publishes queued but not flushed; they were sent now and '
                . \count($failed) . ' failed, the first with: ' . $failed[0]->getMessage()
                . '. Call flush() to get every result',
                E_USER_WARNING,
            );
        }
    }

    public function setNamespace(string $ns): static
    {
        self::checkUtf8($ns, 'ns');
        $this->namespace = $ns;
        return $this;
    }

    public function sendMsg(string $event, mixed $msg, ?array $except = null): int
    {
        self::checkUtf8($event, 'event');
        return $this->send($event, $msg, [], [], Target::except($except), true);
    }

    public function sendToUser(mixed $user, string $event, mixed $msg, ?array $except = null): int
    {
        self::checkUtf8($event, 'event');
        $users = [Target::name($user, 'the user')];
        return $this->send($event, $msg, $users, [], Target::except($except), false);
    }

    public function sendToUsers(array $users, string $event, mixed $msg, ?array $except = null): int
    {
        self::checkUtf8($event, 'event');
        $users = Target::names($users, 'the users');
        return $this->send($event, $msg, $users, [], Target::except($except), false);
    }

    public function sendToRoom(mixed $rooms, string $event, mixed $msg, ?array $except = null): int
    {
        self::checkUtf8($event, 'event');
        $rooms = Target::rooms($rooms);
        return $this->send($event, $msg, [], $rooms, Target::except($except), false);
    }

    public function isOnline(mixed $user): bool
    {
        $user = Target::name($user, 'the user');
        $namespace = $this->namespace;
        return $this->count(static fn (DaemonConnection $c): Count => $c->online($namespace, $user)) > 0;
    }

    /**
     * Whether the count behind the last sendMsg()/sendTo*(), isOnline() or
     * flush() may have left out cluster nodes (figures out of date or missing); after
     * flush(), whether any of its counts did. As the extension's.
     */
    public function lastCountPartial(): bool
    {
        return $this->lastCountPartial;
    }

    /**
     * The namespace's current recovery offset, for the page to render; $ns
     * defaults to the client's namespace.
     */
    public function position(?string $ns = null): string
    {
        if ($ns !== null) {
            self::checkUtf8($ns, 'ns');
        }
        $namespace = $ns ?? $this->namespace;
        return $this->call(static fn (DaemonConnection $c): string => $c->position($namespace));
    }

    /** @return array<string, mixed> */
    public function stats(): array
    {
        $json = $this->call(static fn (DaemonConnection $c): string => $c->stats());
        $stats = json_decode($json, true);
        if (!\is_array($stats)) {
            throw new PushException(
                "the daemon's STATS reply is not a JSON object; are the extension and daemon versions compatible?",
                PushException::PROTOCOL,
            );
        }
        return $stats;
    }

    public function ping(): float
    {
        return $this->call(static fn (DaemonConnection $c): float => $c->ping());
    }

    public function close(): void
    {
        SharedConnections::close($this->socketPath, $this->timeoutMs);
    }

    public function queue(): static
    {
        $this->queueing = true;
        return $this;
    }

    /** @return list<int|PushException> */
    public function flush(): array
    {
        $this->queueing = false;
        $results = $this->takeResults();
        $this->lastCountPartial = false;
        foreach ($results as $result) {
            if ($result instanceof Count && $result->partial) {
                $this->lastCountPartial = true;
            }
        }
        return array_map(
            fn (Count|Failure $result): int|PushException => $result instanceof Failure
                ? $result->toPushException($this->namespace)
                : $result->total,
            $results,
        );
    }

    /** The socket path this client publishes to. */
    public function socketPath(): string
    {
        return $this->socketPath;
    }

    /**
     * Publishes now, or queues between queue() and flush(). $everyone is a
     * broadcast; otherwise no users and no rooms reaches nobody, and must
     * not reach the daemon, which reads an empty target as "everyone".
     *
     * @param list<string> $users
     * @param list<string> $rooms
     * @param list<string> $except
     */
    private function send(string $event, mixed $msg, array $users, array $rooms, array $except, bool $everyone): int
    {
        // Encoding first: a message that cannot be encoded sends nothing.
        $payload = Json::encode($msg);
        if (!$everyone && $users === [] && $rooms === []) {
            if ($this->queueing) {
                SharedConnections::queueDone($this->socketPath, $this->timeoutMs, $this->owner, new Count(0));
                return $this->nextPosition();
            }
            // Known without asking any node: complete.
            $this->lastCountPartial = false;
            return 0;
        }
        $publish = new Publish($this->namespace, $event, $users, $rooms, $except, $payload);
        if ($this->queueing) {
            try {
                SharedConnections::queue($this->socketPath, $this->timeoutMs, $this->owner, $publish);
            } catch (Failure $failure) {
                throw $failure->toPushException($this->namespace);
            }
            return $this->nextPosition();
        }
        return $this->count(static fn (DaemonConnection $c): Count => $c->publish($publish));
    }

    /**
     * Runs a synchronous call that answers with a count, remembers whether
     * it was partial (a call that throws has no count: not partial) and
     * returns the number.
     *
     * @param callable(DaemonConnection): Count $operation
     * @throws PushException
     */
    private function count(callable $operation): int
    {
        $this->lastCountPartial = false;
        $count = $this->call($operation);
        $this->lastCountPartial = $count->partial;
        return $count->total;
    }

    /**
     * Runs a synchronous call on the shared connection.
     *
     * @template T
     * @param callable(DaemonConnection): T $operation
     * @return T
     * @throws PushException
     */
    private function call(callable $operation): mixed
    {
        try {
            return $operation(SharedConnections::get($this->socketPath, $this->timeoutMs));
        } catch (Failure $failure) {
            throw $failure->toPushException($this->namespace);
        }
    }

    /** Counts a queued publish and returns its index in flush()'s result. */
    private function nextPosition(): int
    {
        return $this->queued++;
    }

    /** @return list<Count|Failure> */
    private function takeResults(): array
    {
        $this->queued = 0;
        return SharedConnections::flush($this->socketPath, $this->timeoutMs, $this->owner);
    }

    /**
     * The extension takes these arguments as Rust strings, which must be
     * UTF-8; it refuses other bytes with this TypeError before the method
     * runs.
     */
    private static function checkUtf8(string $value, string $argument): void
    {
        if (preg_match('//u', $value) !== 1) {
            throw new \TypeError("Invalid value given for argument `{$argument}`.");
        }
    }

    private static function defaultSocket(): string
    {
        $configured = \ini_get('push.socket');
        return \is_string($configured) && $configured !== '' ? $configured : Frame::DEFAULT_SOCKET_PATH;
    }

    private static function defaultTimeoutMs(): int
    {
        $configured = \ini_get('push.timeout_ms');
        return \is_string($configured) && ctype_digit(trim($configured))
            ? (int) trim($configured)
            : self::DEFAULT_TIMEOUT_MS;
    }
}

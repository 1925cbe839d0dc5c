<?php

declare(strict_types=1);

namespace PushCore\Yii;

use PushException;

/**
 * Everything the Yii 1.1 and Yii 2 components share: the configuration,
 * the publishing API and the error policy. Deferred sending
 * (DeferredPublishes) and the sends waiting for a commit (AfterCommitQueue)
 * are classes of their own; this trait wires them to the framework.
 *
 * The two components extend different base classes (CApplicationComponent,
 * yii\base\Component), so the shared part is a trait and each component
 * supplies the few things that differ between the frameworks: how to log,
 * how to report a bad configuration, how to run code at the end of the
 * request, and how to learn that a database transaction committed.
 *
 * The publishing methods are the extension's PushClient methods with the
 * same arguments; each returns what PushClient returns, except that a
 * failure is logged and answered with 0 (or false, [] or null) unless
 * throwOnError is set.
 */
trait PushComponentTrait
{
    /**
     * @var string|null Path of push-core's publish socket. Null takes the
     * push.socket INI setting when the extension is loaded, else
     * /run/push-core/push.sock, the daemon's default.
     */
    public ?string $socket = null;

    /**
     * @var string The socket.io namespace messages go to, as the browser
     * connects to it (io('https://site/message_namespace')). The daemon must
     * serve it (push-core serve --namespace ...).
     */
    public string $namespace = '/';

    /**
     * @var string "auto" (the default), "extension", "ffi" or "php"; see
     * docs/yii.md. "auto" takes the extension when it is loaded, else FFI
     * when libpush_ffi.so can be loaded, else the pure-PHP client.
     */
    public string $transport = Transport::AUTO;

    /**
     * @var int|null Milliseconds each connect, write and read may take. Null
     * takes push.timeout_ms when the extension is loaded, else 1000. A dead
     * daemon makes a publish fail within this time, never hang the page.
     */
    public ?int $timeoutMs = null;

    /**
     * @var bool False (the default): a failed push is logged with level
     * error and category "push" and the call returns 0, so a push never
     * breaks the page. True: the PushException is thrown.
     */
    public bool $throwOnError = false;

    /**
     * @var bool True: publishes made during the request are queued and sent
     * as one pipelined batch at the end of the request, after the response
     * went out. The send methods then return 0; flush() sends at once and
     * returns the results.
     */
    public bool $defer = false;

    /**
     * @var bool With defer on php-fpm: call fastcgi_finish_request() before
     * sending the deferred batch, so the browser has the whole page before
     * any push is made. Turn off if something after the component's end of
     * request handler still writes output.
     */
    public bool $finishRequest = true;

    /**
     * @var string|null Path of libpush_ffi.so for the "ffi" transport. Null
     * looks in /usr/local/lib and /usr/lib.
     */
    public ?string $ffiLibrary = null;

    /**
     * @var string|null Path of push_ffi.h (push-ffi/include/push_ffi.h) for
     * the "ffi" transport. Null looks next to the library and in
     * /usr/local/include and /usr/include.
     */
    public ?string $ffiHeader = null;

    /**
     * @var string Application component id of the database connection whose
     * transactions sendAfterCommit() follows.
     */
    public string $db = 'db';

    /**
     * @var string|null The elephant.io component's address of the Node
     * server ('http://127.0.0.1'). Accepted so that an old configuration
     * runs unchanged, and ignored: every transport reaches push-core over
     * its Unix socket ($socket). init() logs one warning while it is set.
     * See docs/yii.md, "Coming from elephant.io".
     */
    public ?string $host = null;

    /**
     * @var string|int|null The elephant.io component's port of the Node
     * server. Accepted and ignored, as $host.
     */
    public string|int|null $port = null;

    /** @var \PushClient|Publisher|null created on first use */
    private ?object $pushClient = null;

    /**
     * The namespace the client was last set to. $namespace is a public
     * property that code may assign directly, so the client is brought in
     * line before each use rather than only in setNamespace().
     */
    private ?string $clientNamespace = null;

    private ?string $resolvedTransport = null;

    /** Publishes waiting for the end of the request; created on first use. */
    private ?DeferredPublishes $deferredPublishes = null;

    /** Sends waiting for a commit; created on first use. */
    private ?AfterCommitQueue $afterCommitSends = null;

    private bool $endOfRequestHooked = false;

    /** Whether the count behind the last counting call was partial; see lastCountPartial(). */
    private bool $lastCountPartial = false;

    /** Logs a failure with level error in category "push". */
    abstract protected function logError(string $message): void;

    /** Logs with level warning in category "push". */
    abstract protected function logWarning(string $message): void;

    /** Stops the application with a configuration error. */
    abstract protected function configurationError(string $message): never;

    /** Arranges for handleEndOfRequest() to run once the response was sent. */
    abstract protected function hookEndOfRequest(): void;

    /**
     * The object after-commit sends wait on: the open transaction (Yii 1.1)
     * or the connection that has one (Yii 2); null when none is open.
     */
    abstract protected function transactionScope(): ?object;

    /** Starts following $scope, so that its commit releases the waiting sends. */
    abstract protected function watchTransaction(object $scope): void;

    /**
     * Checks the configuration. Called from init(): a mistake is reported
     * when the application starts, with what to change, instead of at the
     * first push.
     */
    protected function validatePushConfig(): void
    {
        $component = static::class;
        if ($this->namespace === '' || $this->namespace[0] !== '/') {
            $this->configurationError(
                "{$component}::\$namespace must start with \"/\", as in '/message_namespace'; got '{$this->namespace}'",
            );
        }
        if ($this->socket !== null && trim($this->socket) === '') {
            $this->configurationError(
                "{$component}::\$socket is empty; leave it out for the default " . Transport::defaultSocket() . ' or give the daemon\'s --socket path',
            );
        }
        if ($this->timeoutMs !== null && $this->timeoutMs < 1) {
            $this->configurationError("{$component}::\$timeoutMs must be at least 1 (milliseconds); got {$this->timeoutMs}");
        }
        if (!\in_array($this->transport, Transport::ALL, true)) {
            $this->configurationError(
                "{$component}::\$transport must be one of " . implode(', ', Transport::ALL) . "; got '{$this->transport}'",
            );
        }
        $reason = Transport::unavailable($this->transport, $this->ffiLibrary, $this->ffiHeader);
        if ($reason !== null) {
            $this->configurationError("{$component}::\$transport is '{$this->transport}', but {$reason}");
        }
        $this->warnAboutElephantIoAddress();
    }

    /**
     * An old elephant.io configuration names the Node server with host and
     * port. They are ignored, not refused: the site must keep running
     * unchanged while its configuration is cleaned up. One warning per
     * component (init() calls this), so the log says it once per request
     * rather than once per push.
     */
    private function warnAboutElephantIoAddress(): void
    {
        if ($this->host === null && $this->port === null) {
            return;
        }
        $component = static::class;
        $given = [];
        foreach (['host' => $this->host, 'port' => $this->port] as $key => $value) {
            if ($value !== null) {
                $given[] = "{$key} " . var_export($value, true);
            }
        }
        $socket = $this->socket ?? Transport::defaultSocket();
        $this->logWarning(
            "{$component}: the elephant.io settings host and port are deprecated and ignored (" . implode(', ', $given)
            . "): push-core is reached over its Unix socket {$socket}; remove them from the component's configuration"
            . ' (docs/yii.md, "Coming from elephant.io")',
        );
    }

    /**
     * Publishes to another namespace from now on. The old component's
     * setNameSpace() is this method: PHP method names ignore case.
     */
    public function setNamespace(string $ns): static
    {
        $this->namespace = $ns;
        return $this;
    }

    /**
     * Everyone connected to the namespace: the old component's call.
     *
     * @param mixed $msg any value json_encode() accepts
     * @param list<string|int>|null $except users to leave out
     * @return int connections reached; 0 when it failed and was logged, or was deferred
     */
    public function sendMsg(string $event, mixed $msg, ?array $except = null): int
    {
        return $this->publish('sendMsg', [$event, $msg, $except]);
    }

    /**
     * Every connection (tab, device) of one user, as the auth action names
     * users.
     *
     * @param list<string|int>|null $except
     */
    public function sendToUser(string|int $user, string $event, mixed $msg, ?array $except = null): int
    {
        return $this->publish('sendToUser', [$user, $event, $msg, $except]);
    }

    /**
     * Every connection of each of these users. An empty list reaches nobody.
     *
     * @param list<string|int> $users
     * @param list<string|int>|null $except
     */
    public function sendToUsers(array $users, string $event, mixed $msg, ?array $except = null): int
    {
        return $this->publish('sendToUsers', [$users, $event, $msg, $except]);
    }

    /**
     * The members of a room, or of any of several rooms, as the auth
     * action's rooms callback named them.
     *
     * @param string|int|list<string|int> $rooms
     * @param list<string|int>|null $except
     */
    public function sendToRoom(string|int|array $rooms, string $event, mixed $msg, ?array $except = null): int
    {
        return $this->publish('sendToRoom', [$rooms, $event, $msg, $except]);
    }

    /** Whether the user has a connection in the namespace; false when the question failed and was logged. */
    public function isOnline(string|int $user): bool
    {
        $this->lastCountPartial = false;
        return $this->attempt('isOnline', function () use ($user): bool {
            $client = $this->client();
            $online = $client->isOnline($user);
            $this->lastCountPartial = $client->lastCountPartial();
            return $online;
        }, false);
    }

    /**
     * Whether the count behind the last sendMsg()/sendTo*(), isOnline() or
     * flush() is partial: push-core runs as a cluster (docs/scaling.md) and
     * a node's presence may be out of date (or this node cannot reach Redis),
     * so the number may leave that node's connections out, and isOnline()'s
     * false may be wrong.
     * After flush(), true when any of its counts was. False against a single
     * daemon, when the call failed (and returned 0/false), and for a
     * deferred send, which returns 0 without asking.
     */
    public function lastCountPartial(): bool
    {
        return $this->lastCountPartial;
    }

    /**
     * The namespace's current recovery offset, for the page to render into
     * its socket.io connect (io(url, {auth: {offset}})): the browser then
     * receives every message published after this call, even those sent
     * before its socket was up. See docs/recovery.md.
     *
     * Null when it failed and was logged (throwOnError off): the page then
     * connects without an offset, and gets only what is published after it
     * connects, as without recovery. With recovery off on the daemon
     * (--recovery-window 0) the failure is PushException::RECOVERY_OFF.
     *
     * @param string|null $ns null: the component's namespace
     */
    public function position(?string $ns = null): ?string
    {
        return $this->attempt('position', fn (): string => $this->client()->position($ns), null);
    }

    /**
     * The daemon's counters (docs/protocol.md, STATS); [] when it failed and was logged.
     *
     * @return array<string, mixed>
     */
    public function stats(): array
    {
        return $this->attempt('stats', fn (): array => $this->client()->stats(), []);
    }

    /** One round trip to the daemon in seconds; null when it failed and was logged. */
    public function ping(): ?float
    {
        return $this->attempt('ping', fn (): float => $this->client()->ping(), null);
    }

    /**
     * The old component's call after sending. Deferred publishes are still
     * sent at the end of the request. With the extension, the connection is
     * kept for the worker's next request instead of being closed, which is
     * what makes the extension fast; the pure-PHP and FFI clients close it.
     */
    public function close(): void
    {
        if ($this->pushClient === null || $this->resolvedTransport === Transport::EXTENSION) {
            return;
        }
        $this->pushClient->close();
    }

    /**
     * Sends the deferred publishes now, as one pipelined batch.
     *
     * @return list<int|PushException> one result per publish, in order: the
     *         connections reached, or the exception it failed with (each
     *         failure is also logged; with throwOnError the first is thrown
     *         after all were sent)
     */
    public function flush(): array
    {
        return $this->sendDeferred(true);
    }

    /**
     * Makes a send only if the current database transaction commits.
     *
     * $send receives this component and makes its sends as usual:
     *
     *     $push->sendAfterCommit(fn ($push) => $push->sendToUser($id, 'order', $order));
     *
     * With no transaction open the send is made at once (deferred if defer
     * is on). If the transaction rolls back, the send is dropped. How the
     * commit is noticed depends on the framework; see docs/yii.md.
     *
     * @param callable(static): mixed $send
     */
    public function sendAfterCommit(callable $send): void
    {
        $scope = $this->transactionScope();
        if ($scope === null) {
            $send($this);
            return;
        }
        $this->afterCommitQueue()->wait($scope, $send);
        $this->watchTransaction($scope);
        $this->hookEndOfRequestOnce();
    }

    /**
     * The transport in use: "extension", "ffi" or "php" ("auto" resolved).
     */
    public function getActiveTransport(): string
    {
        return $this->resolvedTransport ??= Transport::resolve($this->transport, $this->ffiLibrary, $this->ffiHeader);
    }

    /**
     * The client behind the component, for what the component does not
     * wrap. It has the extension's PushClient API whatever the transport.
     *
     * @return \PushClient|Publisher
     * @throws PushException when the FFI library cannot be loaded
     */
    public function getClient(): object
    {
        $this->pushClient ??= Transport::create(
            $this->getActiveTransport(),
            $this->socket,
            $this->namespace,
            $this->timeoutMs,
            $this->ffiLibrary,
            $this->ffiHeader,
        );
        if ($this->clientNamespace !== $this->namespace) {
            $this->pushClient->setNamespace($this->namespace);
            $this->clientNamespace = $this->namespace;
        }
        return $this->pushClient;
    }

    /**
     * Runs at the end of the request: lets the response go, then sends what
     * was deferred. Failures are logged; there is no caller left to throw to.
     */
    public function handleEndOfRequest(): void
    {
        $this->dropUncommittedSends('the request ended before the transaction committed');
        if ($this->deferred()->isEmpty()) {
            return;
        }
        if ($this->finishRequest) {
            if (\function_exists('fastcgi_finish_request')) {
                fastcgi_finish_request();
            } elseif (\function_exists('litespeed_finish_request')) {
                litespeed_finish_request();
            }
        }
        $this->sendDeferred(false);
    }

    /** Sends the waiting after-commit sends of $scope: its transaction committed. */
    protected function releaseAfterCommit(object $scope): void
    {
        foreach ($this->afterCommitQueue()->release($scope) as $send) {
            $send($this);
        }
    }

    /** Forgets the waiting after-commit sends of $scope: its transaction rolled back. */
    protected function discardAfterCommit(object $scope): void
    {
        $this->afterCommitQueue()->discard($scope);
    }

    /** Drops after-commit sends whose transaction can no longer commit as far as we can tell. */
    protected function dropUncommittedSends(string $why): void
    {
        $count = $this->afterCommitQueue()->discardAll();
        if ($count > 0) {
            $this->logWarning("{$count} push(es) waiting for a commit were dropped: {$why}.");
        }
    }

    /**
     * One publish: now, or queued when deferred.
     *
     * @param list<mixed> $args the PushClient method's arguments
     */
    private function publish(string $method, array $args): int
    {
        $this->lastCountPartial = false;
        if ($this->defer) {
            $this->deferred()->add($this->namespace, $method, $args);
            $this->hookEndOfRequestOnce();
            return 0;
        }
        return $this->attempt($method, function () use ($method, $args): int {
            $client = $this->client();
            $recipients = $client->$method(...$args);
            $this->lastCountPartial = $client->lastCountPartial();
            return $recipients;
        }, 0);
    }

    /**
     * Sends the deferred publishes as one pipelined batch, logs each
     * failure, and with $mayThrow and throwOnError throws the first one
     * once all were sent.
     *
     * @return list<int|PushException>
     */
    private function sendDeferred(bool $mayThrow): array
    {
        try {
            $sent = $this->deferred()->send(fn (): object => $this->client());
        } finally {
            // The batch switched the client's namespace; getClient() resets it.
            $this->clientNamespace = null;
        }
        // Every int result came from the client's flush(), whose flag covers
        // them all; with none, no count was had.
        $counted = array_filter($sent, static fn (array $s): bool => \is_int($s['result'])) !== [];
        $this->lastCountPartial = $counted && $this->pushClient !== null && $this->pushClient->lastCountPartial();
        $first = null;
        foreach ($sent as ['method' => $method, 'result' => $result]) {
            if ($result instanceof PushException) {
                $first ??= $result;
                $this->logError("deferred {$method} failed: " . self::describe($result));
            }
        }
        if ($first !== null && $mayThrow && $this->throwOnError) {
            throw $first;
        }
        return array_column($sent, 'result');
    }

    /**
     * Runs $call; a PushException is thrown on with throwOnError, else
     * logged and answered with $fallback.
     *
     * @template T
     * @param callable(): T $call
     * @param T $fallback
     * @return T
     */
    private function attempt(string $operation, callable $call, mixed $fallback): mixed
    {
        try {
            return $call();
        } catch (PushException $error) {
            if ($this->throwOnError) {
                throw $error;
            }
            $this->logError("{$operation} failed: " . self::describe($error));
            return $fallback;
        }
    }

    /** @return \PushClient|Publisher */
    private function client(): object
    {
        return $this->getClient();
    }

    private function deferred(): DeferredPublishes
    {
        return $this->deferredPublishes ??= new DeferredPublishes();
    }

    private function afterCommitQueue(): AfterCommitQueue
    {
        return $this->afterCommitSends ??= new AfterCommitQueue();
    }

    private function hookEndOfRequestOnce(): void
    {
        if (!$this->endOfRequestHooked) {
            $this->endOfRequestHooked = true;
            $this->hookEndOfRequest();
        }
    }

    private static function describe(PushException $error): string
    {
        return $error->getMessage() . ' (PushException code ' . $error->getCode() . ')';
    }
}

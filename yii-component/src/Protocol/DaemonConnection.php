<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * One kept connection to the daemon, in pure PHP: the counterpart of
 * push-client's blocking Client (push-client/src/client.rs), with the same
 * delivery guarantee:
 *
 * - The connection is opened lazily and kept. Before each request on an idle
 *   connection, a zero-timeout select notices a daemon that went away (for
 *   example a restart) and the connection is opened again first.
 * - A request is sent again on a fresh connection only when writing its
 *   frame failed because the daemon was gone (EPIPE, ECONNRESET, ENOTCONN).
 *   A frame the daemon did not receive whole is never processed, so the
 *   retry cannot duplicate it.
 * - Once the frame is written, a lost connection is reported as
 *   CONNECTION_LOST and never retried: the daemon may already have delivered
 *   the message. At most once, never twice.
 *
 * Pipelining: queuePublish() encodes into a buffer and returns without
 * waiting. Frames go out in batches of PIPELINE_BATCH_BYTES and at flush(),
 * which returns one result per queued publish, in order.
 *
 * Failures are thrown (or returned by flush()) as Failure, whose messages
 * are push-client's; the caller turns them into PushException.
 */
final class DaemonConnection
{
    /**
     * Queued frames are written once this many bytes are waiting: the same
     * batch size as push-client, well under a Unix socket's buffer, so the
     * replies to one batch always fit in the daemon's send buffer and
     * neither side can block waiting on the other.
     */
    public const PIPELINE_BATCH_BYTES = 64 * 1024;

    /** How much one read asks for; replies are a few bytes, STATS a few KiB. */
    private const READ_CHUNK = 65536;

    /** errno values that mean the daemon end of the socket is gone. */
    private const EPIPE = 32;
    private const ECONNRESET = 104;
    private const ENOTCONN = 107;
    private const EAGAIN = 11;
    private const ETIMEDOUT = 110;

    /** @var resource|null */
    private $stream = null;
    private int $maxFrameSize = Frame::DEFAULT_MAX_FRAME_SIZE;
    private string $readBuffer = '';
    private int $nextRequestId = 1;
    /** Encoded frames not yet written. */
    private string $outgoing = '';
    /** @var list<int> request ids written or queued whose replies have not been read */
    private array $awaiting = [];
    /** @var list<Count|Failure> replies of pipelined publishes, waiting for flush() */
    private array $completed = [];
    private int $connects = 0;
    /** The last warning PHP raised during an I/O call, for its errno. */
    private ?string $ioWarning = null;

    public function __construct(
        public readonly string $path,
        public readonly int $timeoutMs,
        private readonly string $clientName,
    ) {
    }

    public function __destruct()
    {
        // Frames queued and never flushed still go out, as in push-client's
        // Drop; there is nobody left to give their replies to.
        if ($this->outgoing !== '' && $this->stream !== null) {
            $this->writeOutgoingRaw();
        }
    }

    /** How many times a connection was opened; tells reuse from churn. */
    public function connects(): int
    {
        return $this->connects;
    }

    /** Publishes queued and not yet flushed. */
    public function queued(): int
    {
        return \count($this->awaiting) + \count($this->completed);
    }

    /** Drops the connection. Queued publishes that were never written fail. */
    public function close(): void
    {
        if ($this->stream !== null) {
            @stream_socket_shutdown($this->stream, STREAM_SHUT_RDWR);
        }
        $this->dropConnection();
        $this->failAwaiting(fn (): Failure => Failure::connectionLost($this->path, 'the client was closed'));
        $this->outgoing = '';
    }

    /**
     * Delivers a message; returns the number of connections it reached.
     *
     * @throws Failure
     */
    public function publish(Publish $publish): Count
    {
        return $this->expectCount($this->call(fn (): Request => Request::publish($publish)), Frame::PUBLISHED);
    }

    /**
     * How many connections $user has in $namespace; 0 means offline.
     *
     * @throws Failure
     */
    public function online(string $namespace, string $user): Count
    {
        return $this->expectCount($this->call(fn (): Request => Request::online($namespace, $user)), Frame::ONLINE_REPLY);
    }

    /**
     * The daemon's counters as JSON text.
     *
     * @throws Failure
     */
    public function stats(): string
    {
        return $this->expect($this->call(fn (): Request => Request::stats()), Frame::STATS_REPLY);
    }

    /**
     * The namespace's current recovery offset.
     *
     * @throws Failure
     */
    public function position(string $namespace): string
    {
        return $this->expect($this->call(fn (): Request => Request::position($namespace)), Frame::POSITION_REPLY);
    }

    /**
     * One round trip, in seconds.
     *
     * @throws Failure
     */
    public function ping(): float
    {
        $started = hrtime(true);
        $this->expect($this->call(fn (): Request => Request::ping()), Frame::PONG);
        return (hrtime(true) - $started) / 1e9;
    }

    /**
     * Queues a publish without waiting for its reply; see flush(). Errors
     * known before anything is written (the daemon is down, the frame is too
     * large) are thrown at once.
     *
     * @throws Failure
     */
    public function queuePublish(Publish $publish): void
    {
        $this->ensureConnected();
        $id = $this->takeRequestId();
        $this->outgoing .= $this->encode(fn (): Request => Request::publish($publish), $id);
        $this->awaiting[] = $id;
        if (\strlen($this->outgoing) >= self::PIPELINE_BATCH_BYTES) {
            // A failed write is recorded per publish and reported by flush().
            $this->writeOutgoing();
            $this->readAwaitingIntoCompleted();
        }
    }

    /**
     * Writes every queued publish and returns their results in queue order:
     * the recipients, or the Failure it ended in.
     *
     * @return list<Count|Failure>
     */
    public function flush(): array
    {
        $this->flushPendingPipeline();
        $completed = $this->completed;
        $this->completed = [];
        return $completed;
    }

    /**
     * Sends one request and waits for its reply.
     *
     * @param callable(): Request $request builds the request; encoding errors
     *        surface only once connected, as in push-client
     * @throws Failure
     */
    private function call(callable $request): Reply
    {
        // Replies arrive in order, so earlier pipelined ones come first.
        $this->flushPendingPipeline();
        $retried = false;
        while (true) {
            $this->ensureConnected();
            $id = $this->takeRequestId();
            $this->outgoing .= $this->encode($request, $id);
            $error = $this->writeOutgoingRaw();
            if ($error === null) {
                return $this->readReply($id);
            }
            $this->dropConnection();
            if (!$retried && $error->daemonWentAway()) {
                // Nothing the daemon could act on was received: a fresh
                // connection and one more attempt cannot duplicate it.
                $retried = true;
                continue;
            }
            throw $this->ioFailure($error, false);
        }
    }

    /**
     * @param callable(): Request $request
     * @throws Failure
     */
    private function encode(callable $request, int $id): string
    {
        try {
            return $request()->frame($id, $this->maxFrameSize);
        } catch (EncodeError $error) {
            throw Failure::encode($error);
        } catch (FrameTooLarge $error) {
            throw Failure::frameTooLarge($error->len, $error->max);
        }
    }

    /**
     * The one field of a reply of the expected kind.
     *
     * @throws Failure
     */
    private function expect(Reply $reply, int $kind): int|string|null
    {
        if ($reply->kind !== $kind) {
            throw Failure::protocol("unexpected reply {$reply->describe()}");
        }
        return $reply->value;
    }

    /**
     * The count of a reply of the expected kind, with its partial flag.
     *
     * @throws Failure
     */
    private function expectCount(Reply $reply, int $kind): Count
    {
        return new Count((int) $this->expect($reply, $kind), $reply->partial);
    }

    /** Writes pipelined frames and keeps their replies for the next flush. */
    private function flushPendingPipeline(): void
    {
        if ($this->outgoing !== '') {
            $this->writeOutgoing();
        }
        $this->readAwaitingIntoCompleted();
    }

    private function readAwaitingIntoCompleted(): void
    {
        while ($this->awaiting !== []) {
            $id = $this->awaiting[0];
            try {
                $this->completed[] = $this->expectCount($this->readReply($id), Frame::PUBLISHED);
            } catch (Failure $failure) {
                $this->completed[] = $failure;
                $lost = \in_array(
                    $failure->getCode(),
                    [\PushException::CONNECTION_LOST, \PushException::TIMEOUT, \PushException::PROTOCOL],
                    true,
                );
                if ($lost) {
                    // The stream is unusable; the remaining replies will not come.
                    $this->dropConnection();
                    return;
                }
            }
        }
    }

    /** Writes $outgoing; on failure every awaiting publish fails with it. */
    private function writeOutgoing(): void
    {
        $error = $this->writeOutgoingRaw();
        if ($error === null) {
            return;
        }
        $this->dropConnection();
        $failure = $this->ioFailure($error, false);
        $this->completed[] = $failure;
        // The first awaiting publish took the error above.
        array_shift($this->awaiting);
        $message = $failure->getMessage();
        $this->failAwaiting(fn (): Failure => Failure::connectionLost($this->path, $message));
    }

    private function writeOutgoingRaw(): ?IoError
    {
        if ($this->stream === null) {
            $this->outgoing = '';
            return IoError::notConnected();
        }
        $stream = $this->stream;
        while ($this->outgoing !== '') {
            $pending = $this->outgoing;
            $written = $this->io(static fn () => fwrite($stream, $pending));
            if ($written === false || $written === 0) {
                $this->outgoing = '';
                return $this->lastIoError();
            }
            $this->outgoing = (string) substr($this->outgoing, $written);
        }
        return null;
    }

    /** @throws Failure */
    private function readReply(int $expectedId): Reply
    {
        if (($this->awaiting[0] ?? null) === $expectedId) {
            array_shift($this->awaiting);
        }
        if ($this->stream === null) {
            throw Failure::connectionLost($this->path, 'not connected');
        }
        $stream = $this->stream;
        while (($total = Frame::check($this->readBuffer)) === null) {
            $chunk = $this->io(static fn () => fread($stream, self::READ_CHUNK));
            if (\is_string($chunk) && $chunk !== '') {
                $this->readBuffer .= $chunk;
                continue;
            }
            $error = $this->lastIoError();
            if ($chunk === '' && !$error->timedOut && feof($stream)) {
                $this->dropConnection();
                throw Failure::connectionLost($this->path, 'the daemon closed the connection');
            }
            $this->dropConnection();
            throw $this->ioFailure($error, true);
        }
        $body = substr($this->readBuffer, Frame::LENGTH_PREFIX_LEN, $total - Frame::LENGTH_PREFIX_LEN);
        $this->readBuffer = (string) substr($this->readBuffer, $total);
        try {
            $reply = Reply::decode($body);
        } catch (DecodeError $error) {
            throw Failure::protocol($error->getMessage());
        }
        if ($reply->requestId !== $expectedId && $reply->requestId !== 0) {
            throw Failure::protocol("reply for request {$reply->requestId} while waiting for {$expectedId}");
        }
        if ($reply->errorCode !== null) {
            // Errors about the connection itself are followed by a close.
            if ($reply->errorCode->closesConnection()) {
                $this->dropConnection();
            }
            throw Failure::refused($reply->errorCode, $reply->errorMessage);
        }
        return $reply;
    }

    /** @throws Failure */
    private function ensureConnected(): void
    {
        // With replies outstanding, unread bytes are expected: only an idle
        // connection can be checked this way.
        $alive = $this->stream !== null && ($this->awaiting !== [] || $this->peerStillThere());
        if (!$alive) {
            $this->dropConnection();
            $this->open();
            $this->connects++;
        }
    }

    /**
     * Connects and performs the HELLO handshake.
     *
     * @throws Failure
     */
    private function open(): void
    {
        $timeout = max($this->timeoutMs, 1) / 1000;
        $errno = 0;
        $errstr = '';
        $address = "unix://{$this->path}";
        $stream = $this->io(static function () use ($address, &$errno, &$errstr, $timeout) {
            return stream_socket_client($address, $errno, $errstr, $timeout);
        });
        if ($stream === false) {
            $source = $errno !== 0 ? "{$errstr} (os error {$errno})" : ($errstr !== '' ? $errstr : (string) $this->ioWarning);
            throw Failure::unreachable($this->path, $source);
        }
        // PHP's own read buffer would hide buffered bytes from select(), the
        // liveness check; replies are read into $readBuffer instead.
        stream_set_read_buffer($stream, 0);
        stream_set_timeout($stream, intdiv(max($this->timeoutMs, 1), 1000), (max($this->timeoutMs, 1) % 1000) * 1000);
        $this->stream = $stream;
        $this->readBuffer = '';
        $this->maxFrameSize = Frame::DEFAULT_MAX_FRAME_SIZE;

        $id = $this->takeRequestId();
        $this->outgoing = $this->encode(fn (): Request => Request::hello($this->clientName), $id);
        $error = $this->writeOutgoingRaw();
        if ($error !== null) {
            $this->dropConnection();
            throw Failure::unreachable($this->path, $error->text);
        }
        try {
            $reply = $this->readReply($id);
        } catch (Failure $failure) {
            $this->dropConnection();
            throw $failure;
        }
        $this->maxFrameSize = $this->expect($reply, Frame::HELLO_REPLY);
    }

    /**
     * A zero-timeout select: an idle connection whose daemon has gone is
     * readable (end of file), and unsolicited bytes on an idle connection
     * are an error notice from a daemon about to close. Either way,
     * reconnect rather than misread.
     */
    private function peerStillThere(): bool
    {
        $stream = $this->stream;
        $ready = $this->io(static function () use ($stream) {
            $read = [$stream];
            $write = null;
            $except = null;
            return stream_select($read, $write, $except, 0, 0);
        });
        return $ready === 0;
    }

    private function takeRequestId(): int
    {
        $id = $this->nextRequestId;
        // 0 is reserved for errors about the connection as a whole.
        $this->nextRequestId = $id >= 0xffffffff ? 1 : $id + 1;
        return $id;
    }

    private function dropConnection(): void
    {
        if ($this->stream !== null) {
            @fclose($this->stream);
        }
        $this->stream = null;
        $this->readBuffer = '';
    }

    /** @param callable(): Failure $failure */
    private function failAwaiting(callable $failure): void
    {
        foreach ($this->awaiting as $_) {
            $this->completed[] = $failure();
        }
        $this->awaiting = [];
    }

    private function ioFailure(IoError $error, bool $afterWrite): Failure
    {
        if ($error->timedOut) {
            return Failure::timeout($this->path, $this->timeoutMs);
        }
        return $afterWrite
            ? Failure::connectionLost($this->path, $error->text)
            : Failure::unreachable($this->path, $error->text);
    }

    /**
     * Runs one stream call with PHP's warnings captured instead of shown:
     * the warning carries the errno, and the page must not print it.
     *
     * @template T
     * @param callable(): T $call
     * @return T
     */
    private function io(callable $call): mixed
    {
        $this->ioWarning = null;
        set_error_handler(function (int $level, string $message): bool {
            $this->ioWarning = $message;
            return true;
        });
        try {
            return $call();
        } finally {
            restore_error_handler();
        }
    }

    /** What went wrong in the last I/O call, from its warning and the stream. */
    private function lastIoError(): IoError
    {
        $timedOut = $this->stream !== null && (stream_get_meta_data($this->stream)['timed_out'] ?? false);
        $errno = 0;
        $text = 'unknown error';
        if ($this->ioWarning !== null && preg_match('/errno=(\d+) (.*)$/', $this->ioWarning, $match) === 1) {
            $errno = (int) $match[1];
            $text = "{$match[2]} (os error {$errno})";
        } elseif ($this->ioWarning !== null) {
            $text = $this->ioWarning;
        }
        return new IoError(
            $text,
            $timedOut || $errno === self::EAGAIN || $errno === self::ETIMEDOUT,
            \in_array($errno, [self::EPIPE, self::ECONNRESET, self::ENOTCONN], true),
        );
    }
}

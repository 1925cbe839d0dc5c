<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * A failed read or write on the daemon's socket, as far as PHP lets us see
 * it: the errno text from the stream warning ("Broken pipe (os error 32)",
 * the way Rust's io::Error prints it), whether the stream timed out, and
 * whether the errno means the daemon end is gone, which decides whether an
 * unwritten request may be retried.
 */
final class IoError
{
    public function __construct(
        public readonly string $text,
        public readonly bool $timedOut,
        private readonly bool $daemonGone,
    ) {
    }

    public static function notConnected(): self
    {
        return new self('not connected', false, true);
    }

    public function daemonWentAway(): bool
    {
        return $this->daemonGone;
    }
}

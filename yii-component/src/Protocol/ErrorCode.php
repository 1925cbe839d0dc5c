<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

use PushException;

/**
 * A code of the daemon's ERROR reply (docs/protocol.md, "Error codes").
 *
 * These are the wire codes. PHP code never sees them directly: each maps to
 * one of PushException's stable codes in kind(), the same mapping as
 * push-client's error_kind.rs, so every client throws the same code for the
 * same refusal.
 */
final class ErrorCode
{
    public const MALFORMED_FRAME = 1;
    public const FRAME_TOO_LARGE = 2;
    public const UNSUPPORTED_VERSION = 3;
    public const HANDSHAKE_REQUIRED = 4;
    public const UNKNOWN_OPERATION = 5;
    public const UNKNOWN_NAMESPACE = 6;
    public const INVALID_PAYLOAD = 7;
    public const INVALID_REQUEST = 8;
    public const FORBIDDEN = 9;
    public const SHUTTING_DOWN = 10;
    public const INTERNAL = 11;
    public const TOO_MANY_PUBLISHERS = 12;
    public const RECOVERY_OFF = 13;

    private const NAMES = [
        self::MALFORMED_FRAME => 'malformed_frame',
        self::FRAME_TOO_LARGE => 'frame_too_large',
        self::UNSUPPORTED_VERSION => 'unsupported_version',
        self::HANDSHAKE_REQUIRED => 'handshake_required',
        self::UNKNOWN_OPERATION => 'unknown_operation',
        self::UNKNOWN_NAMESPACE => 'unknown_namespace',
        self::INVALID_PAYLOAD => 'invalid_payload',
        self::INVALID_REQUEST => 'invalid_request',
        self::FORBIDDEN => 'forbidden',
        self::SHUTTING_DOWN => 'shutting_down',
        self::INTERNAL => 'internal',
        self::TOO_MANY_PUBLISHERS => 'too_many_publishers',
        self::RECOVERY_OFF => 'recovery_off',
    ];

    public function __construct(public readonly int $code)
    {
    }

    /** The stable name; a code from a newer daemon is "unknown". */
    public function name(): string
    {
        return self::NAMES[$this->code] ?? 'unknown';
    }

    /** As push-client displays it: "unknown_namespace (6)". */
    public function __toString(): string
    {
        return "{$this->name()} ({$this->code})";
    }

    /** The PushException code a caller branches on. */
    public function kind(): int
    {
        return match ($this->code) {
            self::UNKNOWN_NAMESPACE => PushException::UNKNOWN_NAMESPACE,
            self::UNSUPPORTED_VERSION => PushException::VERSION_MISMATCH,
            self::FRAME_TOO_LARGE => PushException::FRAME_TOO_LARGE,
            self::INVALID_PAYLOAD => PushException::ENCODING,
            self::INVALID_REQUEST => PushException::INVALID_ARGUMENT,
            // A stopping daemon took nothing: for the caller that is the
            // same as a daemon that is not there.
            self::SHUTTING_DOWN => PushException::UNREACHABLE,
            self::RECOVERY_OFF => PushException::RECOVERY_OFF,
            self::MALFORMED_FRAME, self::HANDSHAKE_REQUIRED, self::UNKNOWN_OPERATION => PushException::PROTOCOL,
            default => PushException::REFUSED,
        };
    }

    /** Errors about the connection itself, after which the daemon closes it. */
    public function closesConnection(): bool
    {
        return \in_array($this->code, [self::FRAME_TOO_LARGE, self::MALFORMED_FRAME, self::SHUTTING_DOWN], true);
    }
}

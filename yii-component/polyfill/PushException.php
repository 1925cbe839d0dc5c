<?php

declare(strict_types=1);

/**
 * PushException for sites without the push extension.
 *
 * The extension defines this class itself; this file declares the same class
 * with the same constants for the pure-PHP and FFI transports, and is only
 * included when the extension has not defined it (see ../exception.php).
 * Never include it directly: declaring the class twice is a fatal error.
 *
 * The codes are push-client's stable ErrorKind numbers
 * (push-client/src/error_kind.rs): add new ones, never renumber.
 */
class PushException extends \Exception
{
    /** The daemon is not there: no socket, connection refused, or stopping. Nothing was delivered. */
    public const UNREACHABLE = 1;
    /** The daemon did not answer within the timeout. */
    public const TIMEOUT = 2;
    /** The connection broke after the request was written; it may have been delivered, so it was not resent. */
    public const CONNECTION_LOST = 3;
    /** The request is larger than the daemon accepts. */
    public const FRAME_TOO_LARGE = 4;
    /** The namespace is not configured on the daemon. */
    public const UNKNOWN_NAMESPACE = 5;
    /** The client and daemon speak different protocol versions. */
    public const VERSION_MISMATCH = 6;
    /** The message cannot be encoded as JSON, or the daemon found it invalid. */
    public const ENCODING = 7;
    /** An argument cannot be sent as given (wrong type, too long, not UTF-8). */
    public const INVALID_ARGUMENT = 8;
    /** The daemon refused the request for another reason. */
    public const REFUSED = 9;
    /** The two ends do not understand each other: a bug or incompatible versions. */
    public const PROTOCOL = 10;
    /** The call needs missed-message recovery, which the daemon runs without (--recovery-window 0). */
    public const RECOVERY_OFF = 11;
}

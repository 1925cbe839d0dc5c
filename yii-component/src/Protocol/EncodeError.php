<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * A value that cannot be put on the wire: a string or list longer than its
 * length field allows. Becomes a PushException::INVALID_ARGUMENT, exactly as
 * push-client's EncodeError::TooLong does.
 */
final class EncodeError extends \RuntimeException
{
    public static function tooLong(string $what, int $len, int $max): self
    {
        return new self("{$what} is {$len} long; the protocol allows at most {$max}");
    }
}

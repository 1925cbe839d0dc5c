<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * A request body over the daemon's max_frame_size. Refused before a byte is
 * written, so the connection stays usable.
 */
final class FrameTooLarge extends \RuntimeException
{
    public function __construct(public readonly int $len, public readonly int $max)
    {
        parent::__construct("frame body of {$len} bytes exceeds the limit of {$max} bytes");
    }
}

<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * A reply body that does not decode. The messages are push-client's
 * DecodeError texts, so the resulting PushException::PROTOCOL reads the
 * same from every client.
 */
final class DecodeError extends \RuntimeException
{
}

<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

use PushException;

/**
 * Messages become JSON through json_encode() with its default flags, the
 * same call the extension makes, so a message arrives in the browser exactly
 * as json_encode() wrote it whichever transport sent it. A value that cannot
 * be encoded fails here, before anything is written.
 */
final class Json
{
    /** @throws PushException (ENCODING) */
    public static function encode(mixed $message): string
    {
        $json = json_encode($message);
        if ($json === false) {
            throw new PushException(
                'the message cannot be encoded as JSON (' . json_last_error_msg() . '); nothing was sent. Pass only values json_encode() accepts: no resources, INF or NAN, and valid UTF-8 strings',
                PushException::ENCODING,
            );
        }
        return $json;
    }
}

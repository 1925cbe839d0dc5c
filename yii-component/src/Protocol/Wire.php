<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * Field encodings shared by requests and replies (docs/protocol.md, "Field
 * encodings").
 *
 * All integers are big-endian. A string is a u16 byte length and its UTF-8
 * bytes; a list is a u16 count and that many strings; a blob is a u32 byte
 * length and its bytes. Each is one pack() call, which is why the protocol
 * suits a pure-PHP client.
 *
 * The "what" names given to the encoders are the names push-client uses, so
 * "event is 70000 long; the protocol allows at most 65535" reads the same
 * from every client.
 */
final class Wire
{
    /** The most bytes a str holds, and the most entries a list holds. */
    public const MAX_STR_LEN = 0xffff;

    /** The most bytes a blob holds. */
    public const MAX_BLOB_LEN = 0xffffffff;

    public static function u8(int $value): string
    {
        return \chr($value);
    }

    public static function u16(int $value): string
    {
        return pack('n', $value);
    }

    public static function u32(int $value): string
    {
        return pack('N', $value);
    }

    /** @throws EncodeError when the string is longer than a u16 can say */
    public static function str(string $what, string $value): string
    {
        $len = \strlen($value);
        if ($len > self::MAX_STR_LEN) {
            throw EncodeError::tooLong($what, $len, self::MAX_STR_LEN);
        }
        return pack('n', $len) . $value;
    }

    /**
     * @param list<string> $items
     * @throws EncodeError when there are too many items or one is too long
     */
    public static function list(string $what, array $items): string
    {
        $count = \count($items);
        if ($count > self::MAX_STR_LEN) {
            throw EncodeError::tooLong($what, $count, self::MAX_STR_LEN);
        }
        $out = pack('n', $count);
        foreach ($items as $item) {
            $out .= self::str($what, $item);
        }
        return $out;
    }

    /** @throws EncodeError when the blob is longer than a u32 can say */
    public static function blob(string $what, string $value): string
    {
        $len = \strlen($value);
        if ($len > self::MAX_BLOB_LEN) {
            throw EncodeError::tooLong($what, $len, self::MAX_BLOB_LEN);
        }
        return pack('N', $len) . $value;
    }
}

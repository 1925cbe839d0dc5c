<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * Splitting a byte stream into frames, and the numbers every frame uses.
 *
 * A frame is a u32 big-endian body length and the body; a body starts with
 * the message kind (u8) and the request id (u32). As in push-client, finding
 * a frame is separate from parsing it: check() only answers "is a whole
 * frame buffered yet?", and a partial frame is a normal state.
 */
final class Frame
{
    /** The protocol version this client speaks, sent in HELLO. */
    public const PROTOCOL_VERSION = 2;

    /** Bit 0 of the flags byte after a count (version 2): the count is partial. */
    public const COUNT_FLAG_PARTIAL = 0x01;

    /** Bytes taken by the length prefix. */
    public const LENGTH_PREFIX_LEN = 4;

    /**
     * The largest request body a daemon accepts unless it says otherwise in
     * its HELLO reply (push-client's DEFAULT_MAX_FRAME_SIZE).
     */
    public const DEFAULT_MAX_FRAME_SIZE = 1024 * 1024;

    /** Where the daemon listens unless configured otherwise. */
    public const DEFAULT_SOCKET_PATH = '/run/push-core/push.sock';

    // Request kinds; a reply's kind is its request's with the high bit set.
    public const HELLO = 0x01;
    public const PING = 0x02;
    public const PUBLISH = 0x03;
    public const ONLINE = 0x04;
    public const STATS = 0x05;
    public const POSITION = 0x06;

    // Reply kinds.
    public const HELLO_REPLY = 0x81;
    public const PONG = 0x82;
    public const PUBLISHED = 0x83;
    public const ONLINE_REPLY = 0x84;
    public const STATS_REPLY = 0x85;
    public const POSITION_REPLY = 0x86;
    public const ERROR = 0xff;

    /**
     * One whole frame: prefix, kind, request id, fields.
     *
     * @throws FrameTooLarge when the body is over $maxBody
     */
    public static function encode(int $kind, int $requestId, string $fields, int $maxBody): string
    {
        $bodyLen = 5 + \strlen($fields);
        if ($bodyLen > $maxBody) {
            throw new FrameTooLarge($bodyLen, $maxBody);
        }
        return pack('NCN', $bodyLen, $kind, $requestId) . $fields;
    }

    /**
     * The total length (prefix included) of the frame at the start of
     * $buffer, or null while more bytes are needed.
     */
    public static function check(string $buffer): ?int
    {
        if (\strlen($buffer) < self::LENGTH_PREFIX_LEN) {
            return null;
        }
        $total = self::LENGTH_PREFIX_LEN + unpack('N', $buffer)[1];
        return \strlen($buffer) >= $total ? $total : null;
    }
}

<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * What the daemon answered to one request.
 *
 * $value holds the kind's one field: max frame size for HELLO, recipients
 * for PUBLISHED, connections for ONLINE, the JSON text for STATS, the
 * offset for POSITION, null for PONG. An ERROR reply has $errorCode and $errorMessage instead.
 * A count (PUBLISHED, ONLINE) is followed in protocol version 2 by a flags
 * byte, whose bit 0 is $partial: a cluster node's figures may be out of date or missing.
 * The other bits are reserved and ignored. This client always asks for
 * Frame::PROTOCOL_VERSION, and a daemon that accepts the HELLO answers in it.
 */
final class Reply
{
    private function __construct(
        public readonly int $kind,
        public readonly int $requestId,
        public readonly int|string|null $value,
        public readonly ?ErrorCode $errorCode = null,
        public readonly string $errorMessage = '',
        public readonly bool $partial = false,
    ) {
    }

    /**
     * Decodes one frame body (without its length prefix).
     *
     * @throws DecodeError
     */
    public static function decode(string $body): self
    {
        $reader = new Reader($body);
        $kind = $reader->u8('message kind');
        $id = $reader->u32('request id');
        $reply = match ($kind) {
            Frame::HELLO_REPLY => self::hello($reader, $id),
            Frame::PONG => new self($kind, $id, null),
            Frame::PUBLISHED, Frame::ONLINE_REPLY => self::count($reader, $kind, $id),
            Frame::STATS_REPLY => self::stats($reader, $id),
            Frame::POSITION_REPLY => new self($kind, $id, $reader->str('offset')),
            Frame::ERROR => new self(
                $kind,
                $id,
                null,
                new ErrorCode($reader->u16('error code')),
                $reader->str('error message'),
            ),
            default => throw new DecodeError(sprintf('unknown message kind 0x%02x', $kind)),
        };
        $reader->finish();
        return $reply;
    }

    public function isError(): bool
    {
        return $this->kind === Frame::ERROR;
    }

    /**
     * The reply as push-client's Debug output shows it, for "unexpected
     * reply" errors.
     */
    public function describe(): string
    {
        return match ($this->kind) {
            Frame::HELLO_REPLY => "Hello { max_frame_size: {$this->value} }",
            Frame::PONG => 'Pong',
            Frame::PUBLISHED => "Published(Count { total: {$this->value}, partial: " . var_export($this->partial, true) . ' })',
            Frame::ONLINE_REPLY => "Online(Count { total: {$this->value}, partial: " . var_export($this->partial, true) . ' })',
            Frame::STATS_REPLY => 'Stats { json: ' . json_encode($this->value) . ' }',
            Frame::POSITION_REPLY => 'Position { offset: ' . json_encode($this->value) . ' }',
            default => "Error { code: ErrorCode({$this->errorCode?->code}), message: "
                . json_encode($this->errorMessage) . ' }',
        };
    }

    private static function hello(Reader $reader, int $id): self
    {
        $reader->u16('version');
        $maxFrameSize = $reader->u32('max frame size');
        $reader->str('server name');
        return new self(Frame::HELLO_REPLY, $id, $maxFrameSize);
    }

    private static function count(Reader $reader, int $kind, int $id): self
    {
        $count = $reader->u32($kind === Frame::PUBLISHED ? 'recipients' : 'connections');
        $flags = $reader->u8('count flags');
        return new self($kind, $id, $count, partial: ($flags & Frame::COUNT_FLAG_PARTIAL) !== 0);
    }

    private static function stats(Reader $reader, int $id): self
    {
        $json = $reader->blob('stats');
        if (preg_match('//u', $json) !== 1) {
            throw new DecodeError('stats is not valid UTF-8');
        }
        return new self(Frame::STATS_REPLY, $id, $json);
    }
}

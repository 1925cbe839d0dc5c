<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * Reads fields from one frame body, front to back.
 *
 * Every read checks that the bytes are there, so a truncated or lying body
 * ends in a DecodeError naming the field, never in a PHP warning or a
 * misread. finish() insists the body was consumed exactly, as the protocol
 * requires.
 */
final class Reader
{
    private int $offset = 0;

    public function __construct(private readonly string $body)
    {
    }

    /** @throws DecodeError */
    public function u8(string $what): int
    {
        return \ord($this->take(1, $what));
    }

    /** @throws DecodeError */
    public function u16(string $what): int
    {
        return unpack('n', $this->take(2, $what))[1];
    }

    /** @throws DecodeError */
    public function u32(string $what): int
    {
        return unpack('N', $this->take(4, $what))[1];
    }

    /** @throws DecodeError */
    public function str(string $what): string
    {
        $value = $this->take($this->u16($what), $what);
        if (preg_match('//u', $value) !== 1) {
            throw new DecodeError("{$what} is not valid UTF-8");
        }
        return $value;
    }

    /** @throws DecodeError */
    public function blob(string $what): string
    {
        return $this->take($this->u32($what), $what);
    }

    /** @throws DecodeError when bytes are left over */
    public function finish(): void
    {
        $extra = \strlen($this->body) - $this->offset;
        if ($extra !== 0) {
            throw new DecodeError("{$extra} unexpected bytes after the last field");
        }
    }

    /** @throws DecodeError */
    private function take(int $len, string $what): string
    {
        if (\strlen($this->body) - $this->offset < $len) {
            throw new DecodeError("the body ended while reading {$what}");
        }
        $bytes = substr($this->body, $this->offset, $len);
        $this->offset += $len;
        return $bytes;
    }
}

<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

/**
 * What a publisher sends: one static constructor per request kind, each
 * returning the kind and its encoded fields. Frame::encode() adds the prefix
 * and header once the request id and size limit are known.
 *
 * Field order and names follow push-client/src/protocol/request.rs exactly;
 * a test compares the bytes with the extension's and the C ABI's.
 */
final class Request
{
    private function __construct(public readonly int $kind, public readonly string $fields)
    {
    }

    /** @throws EncodeError */
    public static function hello(string $client, int $version = Frame::PROTOCOL_VERSION): self
    {
        return new self(Frame::HELLO, Wire::u16($version) . Wire::str('client name', $client));
    }

    public static function ping(): self
    {
        return new self(Frame::PING, '');
    }

    /** @throws EncodeError */
    public static function publish(Publish $publish): self
    {
        return new self(
            Frame::PUBLISH,
            Wire::str('namespace', $publish->namespace)
                . Wire::str('event', $publish->event)
                . Wire::list('users', $publish->users)
                . Wire::list('rooms', $publish->rooms)
                . Wire::list('except_users', $publish->exceptUsers)
                . Wire::blob('payload', $publish->payload),
        );
    }

    /** @throws EncodeError */
    public static function online(string $namespace, string $user): self
    {
        return new self(Frame::ONLINE, Wire::str('namespace', $namespace) . Wire::str('user', $user));
    }

    public static function stats(): self
    {
        return new self(Frame::STATS, '');
    }

    /** @throws EncodeError */
    public static function position(string $namespace): self
    {
        return new self(Frame::POSITION, Wire::str('namespace', $namespace));
    }

    /**
     * @throws FrameTooLarge
     */
    public function frame(int $requestId, int $maxBody): string
    {
        return Frame::encode($this->kind, $requestId, $this->fields, $maxBody);
    }
}

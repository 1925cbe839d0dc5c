<?php

declare(strict_types=1);

namespace PushCore\Yii;

/**
 * What the site answers when push-core asks who a connecting browser is
 * (push-core serve --auth-url): 200 {"user_id": ..., "rooms": [...]} for a
 * logged-in user, 401 for a guest. Both auth actions build their answer
 * here, so Yii 1.1 and Yii 2 sites answer the daemon alike.
 *
 * The daemon reads user_id as a string or an integer and rooms as strings,
 * and refuses ids over 256 bytes, so those rules are checked here, where a
 * mistake in the site's callbacks is reported with a clear message instead
 * of as an "auth unavailable" in the daemon's log.
 */
final class AuthAnswer
{
    /** The daemon's limit on a user id (push-core/src/auth). */
    public const MAX_USER_ID_LEN = 256;

    /** @param array{user_id: string|int|null, rooms: list<string>} $body */
    private function __construct(public readonly int $status, public readonly array $body)
    {
    }

    public static function guest(): self
    {
        return new self(401, ['user_id' => null, 'rooms' => []]);
    }

    /**
     * @param mixed $userId the id the site's sendToUser() calls use
     * @param iterable<mixed> $rooms room names, strings or integers
     * @throws \InvalidArgumentException when the callbacks returned something the daemon cannot use
     */
    public static function user(mixed $userId, iterable $rooms): self
    {
        if (!\is_int($userId) && !\is_string($userId)) {
            throw new \InvalidArgumentException(
                'the push auth action needs the user id as a string or an integer, not ' . get_debug_type($userId),
            );
        }
        $length = \strlen((string) $userId);
        if ($length === 0 || $length > self::MAX_USER_ID_LEN) {
            throw new \InvalidArgumentException(
                'the push auth action needs a user id of 1 to ' . self::MAX_USER_ID_LEN . " bytes; got {$length}",
            );
        }
        $names = [];
        foreach ($rooms as $room) {
            if (!\is_int($room) && !\is_string($room)) {
                throw new \InvalidArgumentException(
                    'the push auth action\'s rooms callback must return strings or integers, not ' . get_debug_type($room),
                );
            }
            $names[] = (string) $room;
        }
        return new self(200, ['user_id' => $userId, 'rooms' => array_values(array_unique($names))]);
    }

    public function json(): string
    {
        return json_encode($this->body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
    }
}

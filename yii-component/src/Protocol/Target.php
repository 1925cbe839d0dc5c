<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

use PushException;

/**
 * From PHP arguments to the user ids and room names of a publish.
 *
 * PHP code names users by whatever its user table uses, usually an integer
 * id, sometimes a string. On the wire a user is a string, so an integer is
 * written in decimal: user 42 and user "42" are the same user. Anything else
 * (a float, null, an array where a name was expected) is an argument error,
 * not a guess. The rules and messages are the extension's
 * (php-ext/src/target.rs).
 */
final class Target
{
    /** @throws PushException */
    public static function name(mixed $value, string $what): string
    {
        if (\is_int($value)) {
            return (string) $value;
        }
        if (\is_string($value)) {
            if (preg_match('//u', $value) !== 1) {
                throw new PushException("{$what} must be valid UTF-8", PushException::INVALID_ARGUMENT);
            }
            return $value;
        }
        throw new PushException(
            "{$what} must be a string or an integer, not " . get_debug_type($value),
            PushException::INVALID_ARGUMENT,
        );
    }

    /**
     * Every value of the array, each a string or an integer. Keys are ignored.
     *
     * @param array<mixed> $values
     * @return list<string>
     * @throws PushException
     */
    public static function names(array $values, string $what): array
    {
        $names = [];
        foreach ($values as $value) {
            $names[] = self::name($value, "each of {$what}");
        }
        return $names;
    }

    /**
     * A room name or an array of room names.
     *
     * @return list<string>
     * @throws PushException
     */
    public static function rooms(mixed $rooms): array
    {
        return \is_array($rooms) ? self::names($rooms, 'the rooms') : [self::name($rooms, 'the room')];
    }

    /**
     * The users to leave out, if any were given.
     *
     * @param array<mixed>|null $exceptUsers
     * @return list<string>
     * @throws PushException
     */
    public static function except(?array $exceptUsers): array
    {
        return $exceptUsers === null ? [] : self::names($exceptUsers, 'the excepted users');
    }
}

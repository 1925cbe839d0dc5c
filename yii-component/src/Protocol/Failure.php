<?php

declare(strict_types=1);

namespace PushCore\Yii\Protocol;

use PushException;

/**
 * Everything that can go wrong talking to the daemon, before it becomes a
 * PushException.
 *
 * Each constructor is one variant of push-client's ClientError, with the
 * same message text, and getCode() is the PushException code of that
 * variant (error_kind.rs). toPushException() then adds the extension's
 * advice (php-ext/src/error.rs), so a site sees the same class, code and
 * message whichever transport it runs on.
 */
final class Failure extends \RuntimeException
{
    public static function unreachable(string $path, string $source): self
    {
        return new self(
            "cannot connect to push-core at {$path}: {$source}; check that the daemon is running and that this user may open the socket (see its socket_mode and socket_group settings)",
            PushException::UNREACHABLE,
        );
    }

    public static function timeout(string $path, int $timeoutMs): self
    {
        return new self(
            "push-core at {$path} did not answer within " . self::duration($timeoutMs) . '; the daemon may be overloaded or stuck',
            PushException::TIMEOUT,
        );
    }

    public static function connectionLost(string $path, string $source): self
    {
        return new self(
            "the connection to push-core at {$path} was lost before the reply arrived ({$source}); the message may or may not have been delivered, so it was not resent",
            PushException::CONNECTION_LOST,
        );
    }

    public static function frameTooLarge(int $len, int $max): self
    {
        return new self(
            "the request is {$len} bytes but the daemon accepts at most {$max} (its max_frame_size setting); send a smaller message",
            PushException::FRAME_TOO_LARGE,
        );
    }

    public static function encode(EncodeError $error): self
    {
        return new self("cannot encode the request: {$error->getMessage()}", PushException::INVALID_ARGUMENT);
    }

    public static function refused(ErrorCode $code, string $message): self
    {
        return new self("push-core refused the request: {$message} [{$code}]", $code->kind());
    }

    public static function protocol(string $detail): self
    {
        return new self(
            "push-core sent a reply this client cannot understand ({$detail}); are the client and daemon versions compatible?",
            PushException::PROTOCOL,
        );
    }

    /**
     * The exception PHP code sees. ($namespace is the namespace the request
     * was for; the daemon's message already names it.)
     */
    public function toPushException(string $namespace): PushException
    {
        $advice = match ($this->getCode()) {
            PushException::UNKNOWN_NAMESPACE => "; give PushClient's constructor, setNamespace() or position() a namespace the daemon serves",
            PushException::RECOVERY_OFF => '; position() needs missed-message recovery: start push-core with --recovery-window above 0 (the default is 2m), or render the page without an offset',
            // The daemon's message says which side to upgrade.
            PushException::VERSION_MISMATCH => '; the PHP client speaks publish protocol ' . Frame::PROTOCOL_VERSION,
            default => '',
        };
        return new PushException($this->getMessage() . $advice, $this->getCode());
    }

    /**
     * A duration as Rust's Debug prints it ("1s", "1.5s", "250ms"), which is
     * how push-client words its timeout message.
     */
    public static function duration(int $ms): string
    {
        if ($ms >= 1000) {
            $fraction = rtrim(sprintf('%03d', $ms % 1000), '0');
            return intdiv($ms, 1000) . ($fraction === '' ? '' : ".{$fraction}") . 's';
        }
        return $ms === 0 ? '0ns' : "{$ms}ms";
    }
}

<?php

declare(strict_types=1);

namespace PushCore\Yii;

use PushCore\Yii\Ffi\FfiClient;
use PushCore\Yii\Protocol\Client;

/**
 * Which client carries a component's publishes, and how to make it.
 *
 * - "extension": the push extension's \PushClient. Fastest, and its
 *   connection outlives the request under php-fpm.
 * - "ffi": libpush_ffi.so through PHP's FFI (FfiClient), for hosts that can
 *   load a library but not install an extension.
 * - "php": the pure-PHP client (Protocol\Client) over stream_socket_client.
 *   Needs nothing; a site works before ops installs anything, just slower.
 * - "auto": the first of those that is available here, in that order.
 *
 * All three send the same bytes and throw the same PushException, so which
 * one runs is a deployment detail, never a code change.
 */
final class Transport
{
    public const AUTO = 'auto';
    public const EXTENSION = 'extension';
    public const FFI = 'ffi';
    public const PHP = 'php';

    public const ALL = [self::AUTO, self::EXTENSION, self::FFI, self::PHP];

    /** Where "ffi" looks for the library when none is configured. */
    private const LIBRARY_CANDIDATES = ['/usr/local/lib/libpush_ffi.so', '/usr/lib/libpush_ffi.so'];

    private function __construct()
    {
    }

    /** True when the push extension is loaded in this PHP. */
    public static function extensionLoaded(): bool
    {
        return \extension_loaded('push') && class_exists('PushClient', false);
    }

    /**
     * The library and header "ffi" would use, or null for either not found.
     *
     * @return array{0: ?string, 1: ?string}
     */
    public static function ffiFiles(?string $library, ?string $header): array
    {
        $library ??= self::firstFile(self::LIBRARY_CANDIDATES);
        if ($library === null || !is_file($library)) {
            return [null, null];
        }
        $header ??= self::firstFile([
            \dirname($library) . '/push_ffi.h',
            \dirname($library, 2) . '/include/push_ffi.h',
            '/usr/local/include/push_ffi.h',
            '/usr/include/push_ffi.h',
        ]);
        return [$library, $header !== null && is_file($header) ? $header : null];
    }

    /**
     * Why $transport cannot be used here, or null when it can. "auto" can
     * always be used: "php" needs nothing.
     */
    public static function unavailable(string $transport, ?string $ffiLibrary, ?string $ffiHeader): ?string
    {
        switch ($transport) {
            case self::EXTENSION:
                return self::extensionLoaded()
                    ? null
                    : 'the push extension is not loaded in this PHP (SAPI ' . \PHP_SAPI . ', ' . (php_ini_loaded_file() ?: 'no php.ini')
                        . '); install it and check with `php -m`, or use transport "auto" or "php"';
            case self::FFI:
                if (!FfiClient::enabled()) {
                    return 'PHP FFI is not available here: it needs the ffi extension and ffi.enable=1 (the default "preload" allows it only on the command line)';
                }
                [$library, $header] = self::ffiFiles($ffiLibrary, $ffiHeader);
                if ($library === null) {
                    return 'libpush_ffi.so was not found at ' . ($ffiLibrary ?? implode(' or ', self::LIBRARY_CANDIDATES))
                        . '; build it with `cargo build --release -p push-ffi` and set ffiLibrary to its path';
                }
                if ($header === null) {
                    return 'push_ffi.h was not found' . ($ffiHeader !== null ? " at {$ffiHeader}" : ' next to the library')
                        . '; set ffiHeader to push-ffi/include/push_ffi.h';
                }
                return null;
            case self::PHP:
            case self::AUTO:
                return null;
            default:
                return "unknown transport \"{$transport}\"; use one of: " . implode(', ', self::ALL);
        }
    }

    /** The transport "auto" (or a named one) resolves to here. */
    public static function resolve(string $transport, ?string $ffiLibrary, ?string $ffiHeader): string
    {
        if ($transport !== self::AUTO) {
            return $transport;
        }
        if (self::extensionLoaded()) {
            return self::EXTENSION;
        }
        if (self::unavailable(self::FFI, $ffiLibrary, $ffiHeader) === null) {
            return self::FFI;
        }
        return self::PHP;
    }

    /**
     * A client of a resolved transport.
     *
     * @param int|null $timeoutMs null keeps each client's default (push.timeout_ms, else 1 s)
     * @return \PushClient|Publisher
     * @throws \PushException when the FFI library cannot be loaded
     */
    public static function create(
        string $transport,
        ?string $socket,
        string $namespace,
        ?int $timeoutMs,
        ?string $ffiLibrary = null,
        ?string $ffiHeader = null,
    ): object {
        switch ($transport) {
            case self::EXTENSION:
                return self::extensionClient($socket, $namespace, $timeoutMs);
            case self::FFI:
                [$library, $header] = self::ffiFiles($ffiLibrary, $ffiHeader);
                return new FfiClient(
                    (string) ($library ?? $ffiLibrary),
                    (string) ($header ?? $ffiHeader),
                    $socket ?? self::defaultSocket(),
                    $namespace,
                    $timeoutMs ?? self::defaultTimeoutMs(),
                );
            default:
                return new Client($socket, $namespace, $timeoutMs);
        }
    }

    /**
     * The extension reads its timeout from push.timeout_ms when a PushClient
     * is made; a configured timeout is set there for that moment only.
     */
    private static function extensionClient(?string $socket, string $namespace, ?int $timeoutMs): \PushClient
    {
        if ($timeoutMs === null) {
            return new \PushClient($socket, $namespace);
        }
        $previous = \ini_set('push.timeout_ms', (string) $timeoutMs);
        try {
            return new \PushClient($socket, $namespace);
        } finally {
            if ($previous !== false) {
                \ini_set('push.timeout_ms', $previous);
            }
        }
    }

    /** The socket every client uses when none is configured. */
    public static function defaultSocket(): string
    {
        $configured = \ini_get('push.socket');
        return \is_string($configured) && $configured !== '' ? $configured : Protocol\Frame::DEFAULT_SOCKET_PATH;
    }

    private static function defaultTimeoutMs(): int
    {
        $configured = \ini_get('push.timeout_ms');
        return \is_string($configured) && ctype_digit(trim($configured))
            ? (int) trim($configured)
            : Client::DEFAULT_TIMEOUT_MS;
    }

    /** @param list<string> $paths */
    private static function firstFile(array $paths): ?string
    {
        foreach ($paths as $path) {
            if (is_file($path)) {
                return $path;
            }
        }
        return null;
    }
}

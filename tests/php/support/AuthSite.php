<?php

declare(strict_types=1);

namespace PushTests\Support;

use PushTests\Harness\Net;
use PushTests\Harness\Process;

/**
 * The site's auth endpoint (fixtures/auth.php) under PHP's built-in server:
 * the URL push-core asks who a connecting browser is. One per test run,
 * started on first use; it stops when the test process ends, as every
 * Process does.
 */
final class AuthSite
{
    private static ?self $instance = null;

    private Process $process;
    public readonly string $url;

    private function __construct()
    {
        $port = Net::freePort();
        $dir = Net::tempDir('push-php-auth-');
        $this->process = new Process(
            [PHP_BINARY, '-n', '-S', "127.0.0.1:$port", dirname(__DIR__) . '/fixtures/auth.php'],
            "$dir/auth.log",
        );
        Net::waitForPort($port, $this->process);
        $this->url = "http://127.0.0.1:$port/auth";
    }

    public static function url(): string
    {
        if (self::$instance === null) {
            self::$instance = new self();
        }
        return self::$instance->url;
    }
}

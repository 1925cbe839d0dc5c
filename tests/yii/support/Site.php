<?php

declare(strict_types=1);

namespace PushYiiTests\Support;

use PushTests\Harness\Net;
use PushTests\Harness\Process;

/**
 * One of the stand-in sites in tests/yii/site/, served by `php -S` with
 * real PHP sessions, so that a login gives a real session cookie.
 */
final class Site
{
    public readonly int $port;
    private Process $process;

    public function __construct(string $frontController)
    {
        $dir = Net::tempDir('push-yii-site-');
        $this->port = Net::freePort();
        $this->process = new Process(
            [PHP_BINARY, '-d', "session.save_path={$dir}", '-d', 'session.use_strict_mode=1', '-S', "127.0.0.1:{$this->port}", $frontController],
            "{$dir}/site.log",
        );
        Net::waitForPort($this->port, $this->process);
    }

    public function url(string $path = ''): string
    {
        return "http://127.0.0.1:{$this->port}{$path}";
    }

    /** Logs $user in and returns the session cookie ("PHPSESSID=..."). */
    public function login(string|int $user): string
    {
        $response = Net::get($this->url('/login?user=' . rawurlencode((string) $user)));
        foreach ($response['headers'] as $header) {
            if (preg_match('/^Set-Cookie:\s*([^;]+)/i', $header, $match) === 1) {
                return $match[1];
            }
        }
        throw new \RuntimeException('the login gave no session cookie: ' . json_encode($response) . "\n" . $this->process->log());
    }

    public function stop(): void
    {
        $this->process->stop();
    }

    public function log(): string
    {
        return $this->process->log();
    }
}

<?php

declare(strict_types=1);

namespace PushTests\Support;

use PushTests\Harness\Net;
use PushTests\Harness\Process;

/**
 * Debian's php-fpm8.2 with a throwaway config: one pool, one worker, on a
 * loopback port, with the extension under test loaded. One worker means
 * every request runs in the same process, which is what shows whether the
 * connection to the daemon survives between requests.
 */
final class Fpm
{
    private Process $process;
    public readonly int $port;

    /** @param array<string, string> $ini php.ini settings for the pool */
    public function __construct(array $ini = [])
    {
        $dir = Net::tempDir('push-php-fpm-');
        $this->port = Net::freePort();
        $settings = '';
        foreach ($ini as $name => $value) {
            $settings .= "php_admin_value[$name] = $value\n";
        }
        file_put_contents("$dir/php-fpm.conf", <<<CONF
            [global]
            error_log = $dir/fpm.log
            daemonize = no
            pid = $dir/fpm.pid

            [test]
            listen = 127.0.0.1:{$this->port}
            pm = static
            pm.max_children = 1
            catch_workers_output = yes
            clear_env = no
            $settings
            CONF);
        $this->process = new Process(
            [self::binary(), '-n', '-d', 'extension=' . Php::extension(), '-y', "$dir/php-fpm.conf", '-F', '-R'],
            "$dir/fpm.out",
        );
        Net::waitForPort($this->port, $this->process);
    }

    public static function binary(): string
    {
        return getenv('PHP_FPM_BIN') ?: '/usr/sbin/php-fpm8.2';
    }

    /** Runs a script in the pool's worker and returns its output. */
    public function get(string $script, string $query = ''): string
    {
        return FastCgi::get($this->port, $script, $query);
    }

    public function stop(): void
    {
        $this->process->stop(SIGQUIT);
    }
}

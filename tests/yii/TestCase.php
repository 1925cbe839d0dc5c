<?php

declare(strict_types=1);

namespace PushYiiTests;

use PushCore\Yii\Ffi\FfiClient;
use PushCore\Yii\Transport;
use PushTests\Harness\Browsers;
use PushTests\Harness\Daemon;
use PushYiiTests\Support\Site;

/**
 * Shared by the suites: one real daemon per test class, wired to a stand-in
 * Yii 1.1 site as its auth URL (so users and rooms exist), and browsers
 * that log in to that site and connect with its session cookie.
 */
abstract class TestCase extends \PHPUnit\Framework\TestCase
{
    protected const NS = '/message_namespace';

    protected static ?Daemon $daemon = null;
    protected static ?Site $site = null;
    /** @var list<Browsers> */
    private array $browsers = [];

    /** The stand-in site whose auth action the daemon asks (tests/yii/site/). */
    protected static function siteFrontController(): string
    {
        return __DIR__ . '/site/yii1.php';
    }

    public static function setUpBeforeClass(): void
    {
        self::$site = new Site(static::siteFrontController());
        // No auth cache: each test's connect asks the auth action again.
        self::$daemon = new Daemon([self::NS], self::$site->url('/push/auth'), ['--auth-cache-ttl', '0']);
    }

    public static function tearDownAfterClass(): void
    {
        self::$daemon?->stop();
        self::$site?->stop();
        self::$daemon = null;
        self::$site = null;
    }

    protected function tearDown(): void
    {
        if ($this->hasFailed() && self::$daemon !== null) {
            // The daemon's log usually says why.
            fwrite(STDERR, "\n--- push-core log ---\n" . self::$daemon->log() . "\n");
        }
        foreach ($this->browsers as $browsers) {
            $browsers->stop();
        }
        $this->browsers = [];
    }

    /**
     * Browsers connected to the daemon: name => user id to log in as, or
     * null for a guest. With an $offset they connect as a page rendered
     * with that recovery offset does (auth: {offset}).
     *
     * @param array<string, string|int|null> $users
     */
    protected function browsers(array $users, string $namespace = self::NS, ?string $offset = null): Browsers
    {
        $clients = [];
        foreach ($users as $name => $user) {
            $client = ['name' => $name, 'namespace' => $namespace];
            if ($offset !== null) {
                $client['offset'] = $offset;
            }
            if ($user !== null) {
                $client['cookie'] = self::$site->login($user);
            }
            $clients[] = $client;
        }
        return $this->browsers[] = new Browsers(self::$daemon->url(), $clients);
    }

    /**
     * Browsers on an old page: socket.io-client 2.5.0 (socket.io protocol
     * 4), as sites that used the elephant.io component load it. They record
     * only $events (the 2.x client has no catch-all listener).
     *
     * @param array<string, string|int|null> $users name => user id, or null for a guest
     * @param list<string> $events
     */
    protected function oldPages(array $users, array $events, string $namespace = self::NS, string $transport = 'websocket'): Browsers
    {
        $clients = [];
        foreach ($users as $name => $user) {
            $client = ['name' => $name, 'namespace' => $namespace, 'client' => '2.5.0', 'events' => $events, 'transport' => $transport];
            if ($user !== null) {
                $client['cookie'] = self::$site->login($user);
            }
            $clients[] = $client;
        }
        return $this->browsers[] = new Browsers(self::$daemon->url(), $clients);
    }

    /** @return array<string, array{string}> */
    public function transports(): array
    {
        return [
            'extension' => [Transport::EXTENSION],
            'ffi' => [Transport::FFI],
            'php' => [Transport::PHP],
        ];
    }

    /**
     * Makes sure $transport can run here. When it cannot, the test is
     * skipped with what to build, or, in CI (the CI environment variable
     * set, as CI services and .ci/run set it), failed: CI builds every
     * transport, so a missing one there is a broken build, and a skipped
     * comparison must not pass for a green run.
     */
    protected function requireTransport(string $transport): void
    {
        $missing = self::missingTransport($transport);
        if ($missing === null) {
            return;
        }
        $message = "the {$transport} transport cannot run here: {$missing}";
        if (self::inCi()) {
            $this->fail("{$message} (CI builds every transport, so this is a failure there)");
        }
        $this->markTestSkipped($message);
    }

    /** Why $transport cannot run in this PHP, saying how to fix it; null when it can. */
    private static function missingTransport(string $transport): ?string
    {
        if ($transport === Transport::EXTENSION && !Transport::extensionLoaded()) {
            return 'the push extension is not loaded; build it (cargo build -p php-ext) and run the tests through tests/yii/run.sh, which loads it';
        }
        if ($transport === Transport::FFI) {
            if (!FfiClient::enabled()) {
                return 'PHP FFI is not enabled; run the tests through tests/yii/run.sh (php -d ffi.enable=1)';
            }
            if (!is_file(self::ffiLibrary()) || !is_file(self::ffiHeader())) {
                return self::ffiLibrary() . ' or ' . self::ffiHeader() . ' does not exist; build it with cargo build -p push-ffi';
            }
        }
        return null;
    }

    /** Whether the tests run in CI: the CI variable is set to anything but "", "0" or "false". */
    protected static function inCi(): bool
    {
        $ci = getenv('CI');
        return $ci !== false && !\in_array(strtolower($ci), ['', '0', 'false'], true);
    }

    protected static function ffiLibrary(): string
    {
        return getenv('PUSH_FFI_LIBRARY') ?: \dirname(__DIR__, 2) . '/target/debug/libpush_ffi.so';
    }

    protected static function ffiHeader(): string
    {
        return getenv('PUSH_FFI_HEADER') ?: \dirname(__DIR__, 2) . '/push-ffi/include/push_ffi.h';
    }

    /**
     * Component configuration for a transport.
     *
     * @return array<string, mixed>
     */
    protected function transportConfig(string $transport): array
    {
        $this->requireTransport($transport);
        $config = ['transport' => $transport];
        if ($transport === Transport::FFI) {
            $config['ffiLibrary'] = self::ffiLibrary();
            $config['ffiHeader'] = self::ffiHeader();
        }
        return $config;
    }

    /**
     * A daemon of its own with missed-message recovery off, for position()'s
     * failure; the caller stops it.
     */
    protected static function daemonWithoutRecovery(): Daemon
    {
        return new Daemon([self::NS], null, ['--recovery-window', '0']);
    }

    /** A socket path where no daemon listens. */
    protected static function deadSocket(): string
    {
        return sys_get_temp_dir() . '/push-yii-nobody-' . getmypid() . '.sock';
    }
}

<?php

declare(strict_types=1);

namespace PushYiiTests;

use PushCore\Yii\Ffi\FfiClient;
use PushCore\Yii\Transport;
use PushYiiTests\Support\Browsers;
use PushYiiTests\Support\Daemon;
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
        self::$daemon = new Daemon([self::NS], self::$site->url('/push/auth'));
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
        foreach ($this->browsers as $browsers) {
            $browsers->close();
        }
        $this->browsers = [];
    }

    /**
     * Browsers connected to the daemon: name => user id to log in as, or
     * null for a guest.
     *
     * @param array<string, string|int|null> $users
     */
    protected function browsers(array $users, string $namespace = self::NS): Browsers
    {
        $clients = [];
        foreach ($users as $name => $user) {
            $client = ['name' => $name, 'namespace' => $namespace];
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

    /** Skips the test, saying why, when $transport cannot run here. */
    protected function requireTransport(string $transport): void
    {
        if ($transport === Transport::EXTENSION && !Transport::extensionLoaded()) {
            $this->markTestSkipped('the push extension is not loaded: build php-ext (cargo build -p php-ext) and run through tests/yii/run.sh');
        }
        if ($transport === Transport::FFI) {
            if (!FfiClient::enabled()) {
                $this->markTestSkipped('PHP FFI is not enabled: run through tests/yii/run.sh (php -d ffi.enable=1)');
            }
            if (!is_file(self::ffiLibrary()) || !is_file(self::ffiHeader())) {
                $this->markTestSkipped('libpush_ffi.so or push_ffi.h is not built: cargo build -p push-ffi');
            }
        }
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

    /** A socket path where no daemon listens. */
    protected static function deadSocket(): string
    {
        return sys_get_temp_dir() . '/push-yii-nobody-' . getmypid() . '.sock';
    }
}

<?php

declare(strict_types=1);

namespace PushTests;

use PHPUnit\Framework\TestCase;
use PushTests\Support\Php;

/** The extension as PHP sees it: module list, php --ri, INI settings. */
final class ExtensionTest extends TestCase
{
    public function testPhpListsTheModule(): void
    {
        [$status, $modules] = Php::run(['-m']);

        self::assertSame(0, $status);
        self::assertContains('push', explode("\n", $modules));
    }

    public function testPhpRiShowsVersionProtocolAndSettings(): void
    {
        [$status, $info, $stderr] = Php::run(['-d', 'push.timeout_ms=250', '--ri', 'push']);

        self::assertSame(0, $status, $stderr);
        self::assertMatchesRegularExpression('/^version => \d+\.\d+\.\d+$/m', $info);
        self::assertMatchesRegularExpression('/^protocol version => 2$/m', $info);
        self::assertStringContainsString('push.socket => /run/push-core/push.sock', $info);
        self::assertStringContainsString('push.timeout_ms => 250', $info);
        self::assertStringContainsString('push.persistent => 1', $info);
    }

    public function testSettingsHaveTheDaemonsDefaults(): void
    {
        [, $values] = Php::run(['-r', 'echo ini_get("push.socket"), " ", ini_get("push.timeout_ms"), " ", ini_get("push.persistent");']);

        self::assertSame('/run/push-core/push.sock 1000 1', $values);
    }

    /**
     * The push.ini that the package and install.sh ship lists every
     * setting the extension registers, commented out with its default,
     * after a comment saying what it does.
     */
    public function testTheShippedIniListsEverySettingWithItsDefault(): void
    {
        [, $json] = Php::run(['-n', '-r', 'echo json_encode(ini_get_all("push"));']);
        $settings = json_decode($json, true, flags: JSON_THROW_ON_ERROR);
        $ini = (string) file_get_contents(\dirname(__DIR__, 2) . '/php-ext/push.ini');

        self::assertNotEmpty($settings);
        foreach ($settings as $name => $entry) {
            self::assertMatchesRegularExpression(
                '/^; \S.*\n;' . preg_quote($name, '/') . ' = ' . preg_quote((string) $entry['global_value'], '/') . '$/m',
                $ini,
                "push.ini should list $name with its default",
            );
        }
        self::assertMatchesRegularExpression('/^extension=push\.so$/m', $ini);
    }

    public function testTheSocketSettingIsWhereAClientWithoutASocketConnects(): void
    {
        $socket = sys_get_temp_dir() . '/push-from-ini-' . bin2hex(random_bytes(4)) . '.sock';
        [, $message] = Php::run([
            '-d', "push.socket=$socket",
            '-r', 'try { (new PushClient())->ping(); } catch (PushException $e) { echo $e->getCode(), " ", $e->getMessage(); }',
        ]);

        self::assertStringStartsWith(\PushException::UNREACHABLE . ' ', $message);
        self::assertStringContainsString($socket, $message);
    }

    public function testABadTimeoutSettingIsReported(): void
    {
        [, $message] = Php::run([
            '-d', 'push.timeout_ms=soon',
            '-r', 'try { new PushClient(); } catch (PushException $e) { echo $e->getCode(), " ", $e->getMessage(); }',
        ]);

        self::assertStringStartsWith(\PushException::INVALID_ARGUMENT . ' push.timeout_ms', $message);
    }
}

<?php

declare(strict_types=1);

namespace PushYiiTests\Protocol;

use PushYiiTests\TestCase;

/**
 * A site works before ops installs anything: in a PHP without the push
 * extension and without FFI, "auto" picks the pure-PHP client, PushException
 * comes from the component's polyfill with the extension's constants, and
 * messages arrive.
 */
final class FallbackTest extends TestCase
{
    public function testWithoutTheExtensionAutoFallsBackToPurePhp(): void
    {
        $browsers = $this->browsers(['guest' => null]);
        $output = shell_exec(implode(' ', array_map('escapeshellarg', [
            PHP_BINARY, '-n', __DIR__ . '/../support/fallback.php', self::$daemon->socket, self::NS, self::deadSocket(),
        ])) . ' 2>&1');
        $result = json_decode((string) $output, true);
        $this->assertIsArray($result, "the fallback script failed:\n{$output}");

        $this->assertFalse($result['extension_loaded']);
        $this->assertSame('php', $result['transport']);
        $this->assertSame('Exception', $result['exception_parent']);
        $this->assertFalse($result['exception_internal']);
        $this->assertStringEndsWith('yii-component/polyfill/PushException.php', $result['exception_file']);
        $this->assertSame(1, $result['sent']);
        $this->assertSame(['from' => 'pure PHP'], $browsers->event('guest', 'fallback')['data']);

        $this->assertSame(0, $result['dead'], 'a failed push must return 0, not throw');
        $this->assertCount(1, $result['logs']);
        [$message, $level, $category] = $result['logs'][0];
        $this->assertSame(['error', 'push'], [$level, $category]);
        $this->assertStringContainsString('cannot connect to push-core at ' . self::deadSocket(), $message);
    }

    public function testThePolyfillDeclaresTheExtensionsConstants(): void
    {
        if (!\extension_loaded('push')) {
            $this->markTestSkipped('the push extension is not loaded, so there is nothing to compare the polyfill with');
        }
        $output = shell_exec(escapeshellarg(PHP_BINARY) . ' -n -r ' . escapeshellarg(
            'require ' . var_export(\dirname(__DIR__, 3) . '/yii-component/exception.php', true) . ';'
            . ' echo json_encode((new ReflectionClass("PushException"))->getConstants());',
        ));
        $this->assertSame((new \ReflectionClass('PushException'))->getConstants(), json_decode((string) $output, true));
        $this->assertTrue((new \ReflectionClass('PushException'))->isInternal(), 'with the extension loaded, its own class must be used');
    }
}

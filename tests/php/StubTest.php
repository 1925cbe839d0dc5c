<?php

declare(strict_types=1);

namespace PushTests;

use PHPUnit\Framework\TestCase;
use PushTests\Support\Php;

/** php-ext/push.stub.php declares exactly what the loaded extension does. */
final class StubTest extends TestCase
{
    private const DESCRIBE = __DIR__ . '/fixtures/describe.php';
    private const STUB = __DIR__ . '/../../php-ext/push.stub.php';

    public function testTheStubMatchesTheExtension(): void
    {
        [$status, $extension, $stderr] = Php::run([self::DESCRIBE]);
        self::assertSame(0, $status, $stderr);
        [$status, $stub, $stderr] = Php::run([self::DESCRIBE, self::STUB], withExtension: false);
        self::assertSame(0, $status, $stderr);

        self::assertSame($extension, $stub, 'php-ext/push.stub.php is out of date; the expected side is the extension');
    }
}

<?php

declare(strict_types=1);

namespace PushTests;

use JsonSerializable;
use PushTests\Support\PushTestCase;

/**
 * A message arrives in the browser exactly as json_encode() wrote it.
 *
 * The browser side is compared as JSON text re-encoded by Node, decoded
 * again here with objects kept as objects, so `{}` and `[]` stay apart and
 * key order counts. (JavaScript itself orders integer-like keys first, so
 * key-order cases use other keys.)
 */
final class EncodingTest extends PushTestCase
{
    protected function setUp(): void
    {
        $this->startDaemon();
        $this->openBrowsers(['browser' => []]);
    }

    /** @return array<string, array{mixed}> */
    public static function messages(): array
    {
        return [
            'nested' => [['a' => ['b' => ['c' => [1, 2, ['d' => null]]]], 'e' => true, 'f' => 1.5]],
            'unicode' => [['text' => "héllo wörld ✓ 日本語 😀", 'key ✓' => 'é']],
            'empty array is []' => [[]],
            'empty object is {}' => [new \stdClass()],
            'list' => [[3, 1, 2]],
            'array with holes is an object' => [[0 => 'a', 2 => 'c']],
            'key order is kept' => [['zeta' => 1, 'alpha' => 2, 'mid' => 3]],
            'JsonSerializable' => [new class () implements JsonSerializable {
                public function jsonSerialize(): mixed
                {
                    return ['serialized' => true, 'empty' => []];
                }
            }],
            'scalar string' => ['just a string'],
            'integer' => [42],
            'null' => [null],
            'slashes and quotes' => [['path' => '/a/b', 'quote' => "\"'<>&"]],
        ];
    }

    /** @dataProvider messages */
    public function testTheBrowserReceivesWhatJsonEncodeWrote(mixed $message): void
    {
        $this->client()->sendMsg('json', $message);

        $this->browsers->waitForEvent('browser', 'json');
        [$received] = $this->browsers->receivedJson('browser', 'json');
        self::assertSame(self::canonical(json_encode($message)), self::canonical($received));
    }

    public function testJsonSerializeExceptionsReachTheCallerAndNothingIsSent(): void
    {
        $failing = new class () implements JsonSerializable {
            public function jsonSerialize(): mixed
            {
                throw new \DomainException('cannot serialize');
            }
        };

        try {
            $this->client()->sendMsg('json', $failing);
            self::fail('the exception from jsonSerialize() was swallowed');
        } catch (\DomainException $e) {
            self::assertSame('cannot serialize', $e->getMessage());
        }
        $this->settle(['browser']);
        self::assertSame([], $this->browsers->received('browser', 'json'));
    }

    /** JSON text in one spelling: decoded with objects as objects, re-encoded. */
    private static function canonical(string|false $json): string
    {
        self::assertIsString($json);
        return json_encode(
            json_decode($json, false, 512, JSON_THROW_ON_ERROR),
            JSON_THROW_ON_ERROR | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES,
        );
    }
}

<?php

declare(strict_types=1);

namespace PushTests;

use JsonSerializable;
use PushException;
use PushTests\Support\PushTestCase;
use PushTests\Support\RawPolling;

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

    /**
     * Byte for byte, over thousands of generated values: the extension
     * writes plain values itself (php-ext/src/plain_json.rs) and leaves the
     * rest to json_encode(), and either way the browser must get exactly
     * what json_encode() writes, and a value json_encode() refuses must be
     * refused with nothing sent.
     */
    public function testGeneratedValuesArriveExactlyAsJsonEncodeWritesThem(): void
    {
        $seed = (int) (getenv('PUSH_TEST_SEED') ?: 20261127);
        mt_srand($seed);
        $wire = new RawPolling($this->daemon->url(), '/ns');
        $client = $this->client();
        $sent = 0;
        // In batches, read back after each: a browser that does not read is
        // given only max_buffered_messages before messages are dropped.
        for ($batch = 0; $batch < 15; $batch++) {
            $expected = [];
            for ($i = 0; $i < 200; $i++) {
                $value = self::generate(0);
                $json = json_encode($value);
                $where = "seed $seed, batch $batch, value $i";
                try {
                    $client->sendMsg('exact', $value);
                } catch (PushException $e) {
                    self::assertFalse($json, "sendMsg() refused a value json_encode() takes ($where): " . $e->getMessage());
                    self::assertSame(PushException::ENCODING, $e->getCode());
                    continue;
                }
                self::assertIsString($json, "sendMsg() sent a value json_encode() refuses ($where): " . var_export($value, true));
                $expected[] = $json;
            }
            foreach ($wire->payloads('exact', count($expected)) as $index => $received) {
                self::assertSame($expected[$index], $received, "message $index of batch $batch differs (seed $seed)");
            }
            $sent += count($expected);
        }
        self::assertGreaterThan(2000, $sent, 'too few values were encodable to show anything');
    }

    /** A random PHP value, mostly plain, sometimes not. */
    private static function generate(int $depth): mixed
    {
        $kind = mt_rand(0, $depth >= 4 ? 4 : 9);
        switch ($kind) {
            case 0:
                return [null, true, false][mt_rand(0, 2)];
            case 1:
                return [0, -1, 1, 42, PHP_INT_MAX, PHP_INT_MIN, mt_rand(-1000000, 1000000), mt_rand()][mt_rand(0, 7)];
            case 2:
            case 3:
                return self::generateString();
            case 4:
                // Left to json_encode(): floats, objects, references.
                $x = mt_rand(0, 9);
                return [1.5, 0.1, -0.0, 1e100, 3.0, new \stdClass(), (object) ['a' => 1], [&$x]][mt_rand(0, 7)];
            case 5:
            case 6:
                $list = [];
                for ($n = mt_rand(0, 5); $n > 0; $n--) {
                    $list[] = self::generate($depth + 1);
                }
                if ($list !== [] && mt_rand(0, 3) === 0) {
                    // A hole: no longer a list, unless it was the last one.
                    unset($list[mt_rand(0, count($list) - 1)]);
                }
                return $list;
            default:
                $map = [];
                for ($n = mt_rand(0, 5); $n > 0; $n--) {
                    $key = match (mt_rand(0, 4)) {
                        0 => mt_rand(-3, 3),
                        1 => (string) mt_rand(0, 3),
                        2 => 'key' . mt_rand(0, 9),
                        default => self::generateString(),
                    };
                    $map[$key] = self::generate($depth + 1);
                }
                return $map;
        }
    }

    /** Characters json_encode() escapes, and some it does not; now and then invalid UTF-8. */
    private static function generateString(): string
    {
        static $pieces = [
            'a', 'Z', '0', ' ', 'hello', '"', '\\', '/', '<', '>', '&', "'", "\x7f", "\x00", "\x01", "\x08",
            "\x0c", "\n", "\r", "\t", "\x1f", 'é', 'ü', '日本', '😀', "\u{2028}", "\u{2029}", "\u{FEFF}",
            "\u{FFFF}", "\u{10000}", "\u{10FFFF}", '\u00e9',
        ];
        static $invalid = ["\xff", "\xc3", "\xe6\x97", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"];
        $text = '';
        for ($n = mt_rand(0, 8); $n > 0; $n--) {
            $text .= mt_rand(0, 60) === 0 ? $invalid[mt_rand(0, count($invalid) - 1)] : $pieces[mt_rand(0, count($pieces) - 1)];
        }
        return $text;
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

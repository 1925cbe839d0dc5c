<?php

declare(strict_types=1);

namespace PushTests\Support;

use RuntimeException;

/**
 * A browser reduced to engine.io long-polling by hand, to see the packets
 * exactly as the daemon writes them.
 *
 * socket.io clients parse what they receive, so they cannot tell `{"a":1}`
 * from `{"a": 1}`. The daemon passes a message's JSON text through
 * untouched, so the bytes of an event packet here are the bytes the
 * extension sent: this is how a test holds the extension to json_encode()
 * byte for byte.
 *
 * With recovery on, the daemon sends its push:recovery status first after
 * the connect, and follows each message with an argument of its own,
 * `{"offset":"..."}`: the status is skipped and the argument cut off, so
 * what is compared is the message alone.
 */
final class RawPolling
{
    /** Separates packets in one polling response (engine.io v4). */
    private const RECORD_SEPARATOR = "\x1e";

    /** The event the daemon reports its recovery status with. */
    private const RECOVERY_EVENT = 'push:recovery';

    /** The argument the daemon adds after each message when recovery is on, and the closing bracket. */
    private const OFFSET_ARGUMENT = '/,\{"offset":"[^"\\\\]*"\}\]$/';

    private string $sid;

    public function __construct(private readonly string $url, private readonly string $namespace)
    {
        $open = $this->request('GET');
        if (!str_starts_with($open, '0')) {
            throw new RuntimeException("unexpected engine.io open packet: $open");
        }
        $this->sid = (string) json_decode(substr($open, 1), true, 512, JSON_THROW_ON_ERROR)['sid'];
        $this->request('POST', "40{$namespace},");
        do {
            // A response may hold nothing but a ping.
            $connected = $this->packets();
        } while ($connected === []);
        // The recovery status may come in the same response; payloads()
        // skips it when it comes later.
        $others = array_filter(\array_slice($connected, 1), fn (string $p): bool => !$this->isRecoveryStatus($p));
        if (!str_starts_with($connected[0], "40{$namespace},") || $others !== []) {
            throw new RuntimeException('the namespace was not joined: ' . implode(' | ', $connected));
        }
    }

    /**
     * The JSON text of the next `$count` messages of `$event`, in order,
     * exactly as written on the wire.
     *
     * @return list<string>
     */
    public function payloads(string $event, int $count): array
    {
        $prefix = "42{$this->namespace}," . '[' . json_encode($event) . ',';
        $payloads = [];
        $deadline = microtime(true) + 30;
        while (count($payloads) < $count) {
            if (microtime(true) > $deadline) {
                throw new RuntimeException(sprintf('only %d of %d messages arrived', count($payloads), $count));
            }
            foreach ($this->packets() as $packet) {
                if ($this->isRecoveryStatus($packet)) {
                    continue;
                }
                if (str_starts_with($packet, $prefix) && str_ends_with($packet, ']')) {
                    $message = substr($packet, strlen($prefix));
                    $alone = preg_replace(self::OFFSET_ARGUMENT, '', $message, 1, $cut);
                    // Without the argument (recovery off) only the closing bracket follows.
                    $payloads[] = $cut === 1 ? $alone : substr($message, 0, -1);
                } else {
                    throw new RuntimeException("unexpected packet: $packet");
                }
            }
        }
        return $payloads;
    }

    private function isRecoveryStatus(string $packet): bool
    {
        return str_starts_with($packet, "42{$this->namespace}," . '[' . json_encode(self::RECOVERY_EVENT) . ',');
    }

    /**
     * The packets of the next polling response, pings answered and left out.
     *
     * @return list<string>
     */
    private function packets(): array
    {
        $packets = [];
        foreach (explode(self::RECORD_SEPARATOR, $this->request('GET')) as $packet) {
            if ($packet === '2') {
                $this->request('POST', '3');
            } else {
                $packets[] = $packet;
            }
        }
        return $packets;
    }

    private function request(string $method, string $body = ''): string
    {
        $query = 'EIO=4&transport=polling' . (isset($this->sid) ? '&sid=' . urlencode($this->sid) : '');
        $context = stream_context_create(['http' => [
            'method' => $method,
            'header' => "Content-Type: text/plain;charset=UTF-8\r\n",
            'content' => $body,
            'timeout' => 30,
            'ignore_errors' => true,
        ]]);
        $response = @file_get_contents("{$this->url}/socket.io/?{$query}", false, $context);
        if ($response === false) {
            throw new RuntimeException("$method on the polling transport failed");
        }
        return $response;
    }
}

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
 */
final class RawPolling
{
    /** Separates packets in one polling response (engine.io v4). */
    private const RECORD_SEPARATOR = "\x1e";

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
        if (count($connected) !== 1 || !str_starts_with($connected[0], "40{$namespace},")) {
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
                if (str_starts_with($packet, $prefix) && str_ends_with($packet, ']')) {
                    $payloads[] = substr($packet, strlen($prefix), -1);
                } else {
                    throw new RuntimeException("unexpected packet: $packet");
                }
            }
        }
        return $payloads;
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

<?php

declare(strict_types=1);

namespace PushTests\Support;

use RuntimeException;

/**
 * Just enough of a FastCGI client to make php-fpm run a script, the way a
 * web server does: one request per connection, no keep-alive.
 */
final class FastCgi
{
    private const VERSION = 1;
    private const BEGIN_REQUEST = 1;
    private const END_REQUEST = 3;
    private const PARAMS = 4;
    private const STDIN = 5;
    private const STDOUT = 6;
    private const STDERR = 7;
    private const RESPONDER = 1;

    /** Runs `$script` and returns what it printed (headers stripped). */
    public static function get(int $port, string $script, string $query = ''): string
    {
        $socket = stream_socket_client("tcp://127.0.0.1:$port", $errno, $error, 5.0);
        if ($socket === false) {
            throw new RuntimeException("cannot reach php-fpm on port $port: $error");
        }
        stream_set_timeout($socket, 10);
        $params = [
            'GATEWAY_INTERFACE' => 'FastCGI/1.0',
            'REQUEST_METHOD' => 'GET',
            'SCRIPT_FILENAME' => $script,
            'SCRIPT_NAME' => '/' . basename($script),
            'QUERY_STRING' => $query,
            'SERVER_PROTOCOL' => 'HTTP/1.1',
            'REMOTE_ADDR' => '127.0.0.1',
        ];
        $encoded = '';
        foreach ($params as $name => $value) {
            $encoded .= self::length(strlen($name)) . self::length(strlen($value)) . $name . $value;
        }
        fwrite(
            $socket,
            self::record(self::BEGIN_REQUEST, pack('nCx5', self::RESPONDER, 0))
            . self::record(self::PARAMS, $encoded)
            . self::record(self::PARAMS, '')
            . self::record(self::STDIN, ''),
        );

        $stdout = $stderr = '';
        while (true) {
            $header = self::readExactly($socket, 8);
            ['type' => $type, 'length' => $length, 'padding' => $padding] =
                unpack('Cversion/Ctype/nid/nlength/Cpadding/x', $header);
            $content = self::readExactly($socket, $length + $padding);
            $content = substr($content, 0, $length);
            if ($type === self::STDOUT) {
                $stdout .= $content;
            } elseif ($type === self::STDERR) {
                $stderr .= $content;
            } elseif ($type === self::END_REQUEST) {
                break;
            }
        }
        fclose($socket);
        if ($stderr !== '') {
            throw new RuntimeException("php-fpm reported: $stderr");
        }
        $bodyStart = strpos($stdout, "\r\n\r\n");
        return $bodyStart === false ? $stdout : substr($stdout, $bodyStart + 4);
    }

    private static function record(int $type, string $content): string
    {
        return pack('CCnnCx', self::VERSION, $type, 1, strlen($content), 0) . $content;
    }

    private static function length(int $length): string
    {
        return $length < 128 ? chr($length) : pack('N', $length | 0x80000000);
    }

    /** @param resource $socket */
    private static function readExactly($socket, int $length): string
    {
        $data = '';
        while (strlen($data) < $length) {
            $chunk = fread($socket, $length - strlen($data));
            if ($chunk === false || $chunk === '') {
                throw new RuntimeException('php-fpm closed the connection mid-response');
            }
            $data .= $chunk;
        }
        return $data;
    }
}

<?php

/**
 * A fake push-core for the transport parity tests: it speaks the publish
 * protocol on a Unix socket, prints every request frame it receives as a
 * JSON line on stdout ({"kind": 3, "id": 2, "hex": "..."}), and misbehaves
 * on demand, so that each transport can be shown to send the same bytes and
 * to fail the same way.
 *
 * Usage: php fake-daemon.php SOCKET MODE
 *   ok                   answers everything (PUBLISHED 7, ONLINE 1, PONG, STATS {},
 *                        POSITION "fake-epoch-7")
 *   silent               answers HELLO, then nothing (the client times out)
 *   close-after-request  answers HELLO, closes on the next request (connection lost)
 *   old-version          refuses HELLO with unsupported_version and closes
 *   garbage              answers requests with an unknown reply kind
 *   small-frames         announces a max frame size of 64 bytes
 *   recovery-off         answers POSITION with recovery_off, as a daemon with
 *                        --recovery-window 0 does
 */

declare(strict_types=1);

[, $path, $mode] = $argv;
@unlink($path);
$server = stream_socket_server("unix://{$path}", $errno, $errstr);
if ($server === false) {
    fwrite(STDERR, "cannot listen on {$path}: {$errstr}\n");
    exit(1);
}
fwrite(STDOUT, json_encode(['ready' => true]) . "\n");

function frame(int $kind, int $id, string $fields): string
{
    return pack('NCN', 5 + strlen($fields), $kind, $id) . $fields;
}

function str16(string $s): string
{
    return pack('n', strlen($s)) . $s;
}

/** @var array<int, array{stream: resource, buffer: string, hello: bool}> */
$clients = [];
while (true) {
    $read = [$server];
    foreach ($clients as $client) {
        $read[] = $client['stream'];
    }
    $write = $except = null;
    if (@stream_select($read, $write, $except, 1) === false) {
        continue;
    }
    foreach ($read as $stream) {
        if ($stream === $server) {
            $accepted = @stream_socket_accept($server, 0);
            if ($accepted !== false) {
                $clients[(int) $accepted] = ['stream' => $accepted, 'buffer' => '', 'hello' => false];
            }
            continue;
        }
        $key = (int) $stream;
        $chunk = fread($stream, 65536);
        if ($chunk === '' || $chunk === false) {
            fclose($stream);
            unset($clients[$key]);
            continue;
        }
        $clients[$key]['buffer'] .= $chunk;
        while (strlen($clients[$key]['buffer']) >= 4) {
            $len = unpack('N', $clients[$key]['buffer'])[1];
            if (strlen($clients[$key]['buffer']) < 4 + $len) {
                break;
            }
            $frame = substr($clients[$key]['buffer'], 0, 4 + $len);
            $clients[$key]['buffer'] = substr($clients[$key]['buffer'], 4 + $len);
            ['kind' => $kind, 'id' => $id] = unpack('Ckind/Nid', substr($frame, 4, 5));
            fwrite(STDOUT, json_encode(['kind' => $kind, 'id' => $id, 'hex' => bin2hex($frame)]) . "\n");

            if ($kind === 0x01) {
                if ($mode === 'old-version') {
                    fwrite($stream, frame(0xff, $id, pack('n', 3) . str16('the client speaks publish protocol 2, older than this push-core\'s 3: upgrade the client (the PHP extension, push-client, the Yii component) to a release that speaks protocol 3')));
                    fclose($stream);
                    unset($clients[$key]);
                    continue 2;
                }
                $max = $mode === 'small-frames' ? 64 : 1024 * 1024;
                fwrite($stream, frame(0x81, $id, pack('nN', 2, $max) . str16('fake-push-core/0')));
                continue;
            }
            switch ($mode) {
                case 'silent':
                    continue 2;
                case 'close-after-request':
                    fclose($stream);
                    unset($clients[$key]);
                    continue 3;
                case 'garbage':
                    fwrite($stream, frame(0x99, $id, ''));
                    continue 2;
            }
            // Protocol version 2: a count is followed by its flags byte. In
            // "partial" mode bit 0 (partial) is set, and a reserved bit too,
            // which clients must ignore.
            $flags = $mode === 'partial' ? 0x03 : 0x00;
            $reply = match ($kind) {
                0x02 => frame(0x82, $id, ''),
                0x03 => frame(0x83, $id, pack('NC', 7, $flags)),
                0x04 => frame(0x84, $id, pack('NC', 1, $flags)),
                0x05 => frame(0x85, $id, pack('N', 2) . '{}'),
                0x06 => $mode === 'recovery-off'
                    ? frame(0xff, $id, pack('n', 13) . str16('missed-message recovery is off on this daemon (recovery_window = 0), so there are no offsets; turn it on, or render pages without one'))
                    : frame(0x86, $id, str16('fake-epoch-7')),
                default => frame(0xff, $id, pack('n', 5) . str16('unknown operation')),
            };
            fwrite($stream, $reply);
        }
    }
}

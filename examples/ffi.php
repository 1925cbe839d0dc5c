<?php

// Publish to push-core from PHP without the extension, through the C ABI of
// push-ffi (libpush_ffi.so) and PHP's FFI.
//
//   cargo build --release -p push-ffi
//   php -d ffi.enable=1 examples/ffi.php [socket] [namespace] [event] [json] [user...]
//
// With no users the message goes to everyone in the namespace. Prints how
// many connections it reached; on failure prints the error code and message
// (the codes are PushException's) and exits with 1.

declare(strict_types=1);

$root = dirname(__DIR__);
$library = getenv('PUSH_FFI_LIB') ?: "$root/target/release/libpush_ffi.so";
$push = FFI::cdef(file_get_contents("$root/push-ffi/include/push_ffi.h"), $library);

[, $socket, $namespace, $event, $json] = $argv + [null, '/run/push-core/push.sock', '/', 'hello', '{"from":"ffi"}'];
$users = array_slice($argv, 5);

/**
 * A C array of C strings, for the users, rooms and except_users arguments.
 * The strings live as long as the returned holder does.
 *
 * @param list<string> $strings
 * @return array{FFI\CData|null, list<FFI\CData>}
 */
function c_strings(array $strings): array
{
    if ($strings === []) {
        return [null, []];
    }
    $array = FFI::new('const char *[' . count($strings) . ']');
    $buffers = [];
    foreach ($strings as $i => $string) {
        $buffers[$i] = FFI::new('char[' . (strlen($string) + 1) . ']');
        FFI::memcpy($buffers[$i], $string, strlen($string));
        $array[$i] = FFI::cast('const char *', $buffers[$i]);
    }
    return [$array, $buffers];
}

$client = $push->push_open($socket, 1000);
[$userArray, $keepAlive] = c_strings($users);
$reached = $push->push_send($client, $namespace, $event, $json, $userArray, count($users), null, 0, null, 0);

if ($reached < 0) {
    fprintf(STDERR, "push failed [%d]: %s\n", $push->push_last_error_code($client), $push->push_last_error_message($client));
    $push->push_close($client);
    exit(1);
}
printf("delivered to %d connections\n", $reached);
$push->push_close($client);

<?php

declare(strict_types=1);

/**
 * The router script of `php -S` (see `run`): one path, one file in app/.
 *
 * Files in public/ (the page's script and style sheet) are left to the
 * built-in server. The socket.io client comes straight from the npm package
 * `run` installed, and push-core's page helper straight from clients/js/,
 * so the page always runs the stock client and the helper as they are in
 * the repository, never a copy.
 */

require __DIR__ . '/app/demo.php';

$routes = [
    '/' => 'home.php',
    '/login' => 'login.php',
    '/logout' => 'logout.php',
    '/push/auth' => 'auth.php',     // push-core's --auth-url
    '/send' => 'send.php',
    '/online' => 'online.php',
];
$clientFiles = [
    '/socket.io.min.js' => 'application/javascript',
    '/socket.io.min.js.map' => 'application/json',
];
// The page helper (clients/js): a module script must come with a JavaScript content type.
$helper = ['/push-core-client.mjs' => __DIR__ . '/../../clients/js/index.mjs'];

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?: '/';

if (isset($routes[$path])) {
    require __DIR__ . '/app/' . $routes[$path];

    return true;
}
if (isset($clientFiles[$path])) {
    $file = __DIR__ . '/node_modules/socket.io-client/dist' . $path;
    if (!is_file($file)) {
        http_response_code(500);
        header('Content-Type: text/plain');
        echo "socket.io-client is not installed: run `npm ci` in examples/demo (examples/demo/run does)\n";

        return true;
    }
    header('Content-Type: ' . $clientFiles[$path]);
    header('Cache-Control: max-age=3600');
    readfile($file);

    return true;
}
if (isset($helper[$path])) {
    header('Content-Type: text/javascript');
    header('Cache-Control: no-cache');
    readfile($helper[$path]);

    return true;
}
if ($path !== '/' && is_file(__DIR__ . '/public' . $path)) {
    return false;   // the built-in server sends it, with its content type
}

http_response_code(404);
header('Content-Type: text/plain');
echo "Not found\n";

return true;

<?php

declare(strict_types=1);

/**
 * What every page of the demo shares: the demo users, the configuration that
 * `run` passes in the environment, the PHP session, and the publisher.
 *
 * The site plays the part of a real PHP application: it knows who is logged
 * in (a PHP session cookie), tells push-core who a browser is (auth.php) and
 * publishes through the push extension (send.php, online.php). Nothing here
 * is specific to a framework.
 */

/**
 * The demo's users, with the rooms auth.php puts their connections in. A
 * user id is what PHP passes to sendToUser() and isOnline(); push-core only
 * ever compares it with what auth.php answered.
 */
const DEMO_USERS = [
    'alice' => ['rooms' => ['team:blue']],
    'bob' => ['rooms' => ['team:blue']],
    'carol' => ['rooms' => ['team:green']],
];

/** The socket.io events the demo publishes, one per kind of target. */
const DEMO_EVENTS = ['everyone' => 'broadcast', 'user' => 'private', 'room' => 'team'];

/** Longest message the form accepts, in characters: plenty for a demo, and no abuse of the feed. */
const DEMO_MAX_TEXT = 500;

/**
 * The settings `run` passes to `php -S` in the environment, with defaults for
 * a push-core started by scripts/serve.sh.
 *
 * @return array{socket: string, namespace: string, push_port: int, client: string}
 */
function demo_config(): array
{
    return [
        // The publish socket: where PHP talks to push-core.
        'socket' => getenv('DEMO_PUSH_SOCKET') ?: '/run/push-core/push.sock',
        'namespace' => getenv('DEMO_PUSH_NAMESPACE') ?: '/demo',
        // Where the browser talks to push-core: same host as this site, this port.
        'push_port' => (int) (getenv('DEMO_PUSH_PORT') ?: 3001),
        // "auto": the extension if loaded, else the pure-PHP client; "pure": always the latter.
        'client' => getenv('DEMO_PHP_CLIENT') ?: 'auto',
    ];
}

/**
 * Starts the PHP session and returns the logged-in user, or null for a guest.
 *
 * With $write false the session is read and closed at once: pages that only
 * need to know who is asking (the auth endpoint, the online poll) then never
 * wait for another request's session lock, and never create a session.
 */
function demo_session(bool $write = false): ?string
{
    if (session_status() !== PHP_SESSION_ACTIVE) {
        session_name('demo_session');
        session_set_cookie_params(['path' => '/', 'httponly' => true, 'samesite' => 'Lax']);
        if (!$write && !isset($_COOKIE[session_name()])) {
            return null;
        }
        session_start(['use_strict_mode' => true, 'read_and_close' => !$write]);
    }
    $user = $_SESSION['user'] ?? null;

    return is_string($user) && isset(DEMO_USERS[$user]) ? $user : null;
}

/**
 * The token send.php wants in X-CSRF-Token, so that only this site's own
 * page can publish in a logged-in user's name.
 */
function demo_csrf_token(): string
{
    return $_SESSION['csrf'] ??= bin2hex(random_bytes(16));
}

/**
 * The publisher for the demo's namespace: the push extension's PushClient,
 * or, where the extension is not loaded, the pure-PHP client from
 * yii-component/, which has the same methods and throws the same
 * PushException.
 *
 * @return PushClient|\PushCore\Yii\Protocol\Client
 */
function demo_publisher(): object
{
    $config = demo_config();
    if ($config['client'] !== 'pure' && class_exists('PushClient', false)) {
        return new PushClient($config['socket'], $config['namespace']);
    }
    require_once __DIR__ . '/../../../yii-component/autoload.php';

    return new \PushCore\Yii\Protocol\Client($config['socket'], $config['namespace']);
}

/**
 * Where the namespace's stream is now, for the page to start from (the page
 * helper's `offset` option): every message published after the page was
 * rendered then reaches it, even one published before its socket.io
 * connection was up.
 *
 * null when the publisher cannot tell: a push extension without
 * PushClient::position(), the pure-PHP client, recovery turned off in
 * push-core, or push-core unreachable. The page then starts from wherever
 * the stream is when it connects, as a page without recovery would.
 */
function demo_position(): ?string
{
    try {
        $push = demo_publisher();
        if (!method_exists($push, 'position')) {
            return null;
        }
        $offset = $push->position();

        return is_string($offset) && $offset !== '' ? $offset : null;
    } catch (PushException) {
        return null;
    }
}

/** Which publisher demo_publisher() returns, in words for the page. */
function demo_publisher_name(): string
{
    return demo_config()['client'] !== 'pure' && class_exists('PushClient', false)
        ? 'the push extension (PushClient)'
        : 'the pure-PHP client (yii-component)';
}

/**
 * The page's `?transports=` choice (e.g. "polling"), as a query string to
 * carry through signing in, or "" when there is none. Only transport names
 * pass, so the redirect after sign-in can never lead elsewhere.
 */
function demo_transports_query(): string
{
    $transports = $_GET['transports'] ?? '';

    return is_string($transports) && preg_match('/^(polling|websocket)(,(polling|websocket))?$/', $transports)
        ? '?transports=' . $transports
        : '';
}

/** Ends the request with a JSON body. */
function demo_json(int $status, array $body): never
{
    http_response_code($status);
    header('Content-Type: application/json');
    header('Cache-Control: no-store');
    echo json_encode($body, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES), "\n";
    exit;
}

/** Escapes text for HTML. */
function h(string $text): string
{
    return htmlspecialchars($text, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

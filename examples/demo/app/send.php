<?php

declare(strict_types=1);

/**
 * Publishing, as a site does it: the page posts {"target", "text"} here and
 * PHP hands the message to push-core through the push extension.
 *
 * target is "everyone" (event "broadcast"), "user:<id>" (event "private",
 * every tab of that user) or "room:<name>" (event "team"). The answer carries
 * the number of connections push-core handed the message to.
 */

$sender = demo_session(true);
if ($sender === null) {
    demo_json(401, ['error' => 'Sign in first.']);
}
$token = $_SERVER['HTTP_X_CSRF_TOKEN'] ?? '';
if ($_SERVER['REQUEST_METHOD'] !== 'POST' || !hash_equals(demo_csrf_token(), $token)) {
    demo_json(403, ['error' => 'Send from the demo page.']);
}
session_write_close();   // publishing needs nothing more from the session

$request = json_decode(file_get_contents('php://input') ?: '', true);
$target = (string) ($request['target'] ?? '');
$text = trim((string) ($request['text'] ?? ''));
if ($text === '' || mb_strlen($text) > DEMO_MAX_TEXT) {
    demo_json(422, ['error' => 'Write a message of 1 to ' . DEMO_MAX_TEXT . ' characters.']);
}

$rooms = array_unique(array_merge(...array_column(DEMO_USERS, 'rooms')));
[$kind, $name] = explode(':', $target, 2) + [1 => ''];
$valid = match ($kind) {
    'everyone' => $name === '',
    'user' => isset(DEMO_USERS[$name]),
    'room' => in_array($name, $rooms, true),
    default => false,
};
if (!$valid) {
    demo_json(422, ['error' => 'Choose who gets the message.']);
}

$message = [
    'id' => bin2hex(random_bytes(8)),
    'from' => $sender,
    'to' => $kind === 'everyone' ? null : $name,
    'text' => $text,
    'sent_at' => gmdate('Y-m-d\TH:i:s\Z'),
];
$event = DEMO_EVENTS[$kind];
try {
    $push = demo_publisher();
    $recipients = match ($kind) {
        'everyone' => $push->sendMsg($event, $message),
        'user' => $push->sendToUser($name, $event, $message),
        'room' => $push->sendToRoom($name, $event, $message),
    };
} catch (PushException $e) {
    // The daemon is down or refused: say so, as a site would log it.
    demo_json(503, ['error' => 'push-core: ' . $e->getMessage(), 'code' => $e->getCode()]);
}
demo_json(200, ['event' => $event, 'recipients' => $recipients, 'via' => demo_publisher_name()]);

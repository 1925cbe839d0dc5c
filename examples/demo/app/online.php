<?php

declare(strict_types=1);

/**
 * Who of the other demo users has a connection open, from isOnline(): the
 * page polls this every few seconds for its online/offline dots.
 */

$me = demo_session();
if ($me === null) {
    demo_json(401, ['error' => 'Sign in first.']);
}
$online = [];
try {
    $push = demo_publisher();
    foreach (array_keys(DEMO_USERS) as $user) {
        if ($user !== $me) {
            $online[$user] = $push->isOnline($user);
        }
    }
} catch (PushException $e) {
    demo_json(503, ['error' => 'push-core: ' . $e->getMessage()]);
}
demo_json(200, ['online' => $online]);

<?php

declare(strict_types=1);

/**
 * The endpoint push-core calls at each socket.io connect (`--auth-url`).
 *
 * push-core forwards the browser's Cookie header unchanged, so the PHP session
 * cookie arrives here as if the browser had asked, and the session says who
 * the user is. The answer decides which private messages the connection
 * gets: 200 {"user_id": ..., "rooms": [...]} for a user, 401 for a guest
 * (who still receives broadcasts). See docs/configuration.md, "Identity".
 */

$user = demo_session();
if ($user === null) {
    demo_json(401, ['error' => 'not logged in']);
}
demo_json(200, ['user_id' => $user, 'rooms' => DEMO_USERS[$user]['rooms']]);

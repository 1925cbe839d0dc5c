<?php

declare(strict_types=1);

/** Signing out: the session is destroyed, so the next connect is a guest's. */

if ($_SERVER['REQUEST_METHOD'] === 'POST' && demo_session(true) !== null) {
    $_SESSION = [];
    session_destroy();
    setcookie(session_name(), '', ['expires' => 1, 'path' => '/', 'httponly' => true, 'samesite' => 'Lax']);
}
header('Location: /login', true, 303);

<?php

/**
 * A tiny Yii 2 site for the auth action tests, run with `php -S` on the
 * Yii 2 STAND-INS (tests/yii/stubs/yii2.php), not real Yii.
 *
 *   GET /login?user=42   starts a session for user 42 (the Set-Cookie is the point)
 *   GET /push/auth       PushAuthAction, what push-core's --auth-url calls
 */

declare(strict_types=1);

require __DIR__ . '/../stubs/yii2.php';
require dirname(__DIR__, 3) . '/yii-component/autoload.php';

use PushCore\Yii\Yii2\PushAuthAction;

$app = new yii\web\Application();

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
switch ($path) {
    case '/login':
        $app->getUser()->login((string) $_GET['user']);
        $app->getResponse()->data = 'logged in as ' . $_GET['user'];
        $app->getResponse()->content = 'logged in as ' . $_GET['user'];
        break;
    case '/push/auth':
        $action = new PushAuthAction('auth', null, [
            'rooms' => fn ($userId, yii\web\User $user, string $namespace): array => ['group:' . ((int) $userId % 2), 'ns:' . $namespace],
        ]);
        // What a controller does with an action's return value.
        $app->getResponse()->data = $action->run();
        break;
    default:
        $app->getResponse()->statusCode = 404;
        $app->getResponse()->content = 'not found';
}
$app->finishRequest();

<?php

/**
 * A tiny Yii 1.1 site for the auth action tests, run with `php -S` on the
 * Yii 1.1 STAND-INS (tests/yii/stubs/yii1.php), not real Yii.
 *
 *   GET /login?user=42   starts a session for user 42 (the Set-Cookie is the point)
 *   GET /push/auth       PushAuthAction, what push-core's --auth-url calls
 *
 * The rooms callback puts every user in "group:<user % 2>", so the tests can
 * address a room too.
 */

declare(strict_types=1);

require __DIR__ . '/../stubs/yii1.php';

Yii::setPathOfAlias('application.extensions.push', dirname(__DIR__, 3) . '/yii-component');

$app = new CWebApplication(array(
    'components' => array(
        'user' => array('class' => 'CWebUser'),
    ),
));

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
switch ($path) {
    case '/login':
        $app->getUser()->login((string) $_GET['user']);
        header('Content-Type: text/plain');
        echo 'logged in as ', $_GET['user'];
        $app->end();
        break;
    case '/push/auth':
        Yii::import('application.extensions.push.PushAuthAction');
        $action = Yii::createComponent(
            array(
                'class' => 'application.extensions.push.PushAuthAction',
                'rooms' => function ($userId, CWebUser $user, $namespace) {
                    return array('group:' . ((int) $userId % 2), 'ns:' . $namespace);
                },
            ),
            null,
            'auth',
        );
        $action->run();
        break;
    default:
        http_response_code(404);
        echo 'not found';
}

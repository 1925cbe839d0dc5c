<?php

declare(strict_types=1);

require_once __DIR__ . '/autoload.php';

use PushCore\Yii\AuthAnswer;

/**
 * The endpoint push-core calls to learn who a connecting browser is
 * (push-core serve --auth-url), for Yii 1.1.
 *
 * push-core forwards the browser's cookies, so this action sees the user's
 * own session and answers 200 {"user_id": ..., "rooms": [...]} for a
 * logged-in user or 401 for a guest. Add it to a controller:
 *
 *     public function actions()
 *     {
 *         return array(
 *             'auth' => array(
 *                 'class' => 'application.extensions.push.PushAuthAction',
 *                 'rooms' => function ($userId, CWebUser $user, $namespace) {
 *                     return array('group:' . $user->getState('groupId'));
 *                 },
 *             ),
 *         );
 *     }
 *
 * and let guests reach it (accessRules), since a guest must get the 401
 * rather than a redirect to the login page. docs/yii.md shows how to serve
 * push-core on the site's own domain so that the session cookie reaches it.
 */
class PushAuthAction extends CAction
{
    /**
     * @var callable|null function ($userId, CWebUser $user, string $namespace): array,
     * the rooms (group, chat, ...) this user's connection joins; rooms are
     * what sendToRoom() addresses. Null: no rooms.
     */
    public $rooms;

    /**
     * @var callable|null function (CWebUser $user): string|int, the id that
     * sendToUser() calls use for this user. Null: $user->getId().
     */
    public $userId;

    /** @var string application component id of the web user. */
    public $user = 'user';

    public function run()
    {
        $answer = $this->answer();
        if (!headers_sent()) {
            http_response_code($answer->status);
            header('Content-Type: application/json; charset=utf-8');
            // Each answer is about one session; push-core caches it itself.
            header('Cache-Control: no-store');
        }
        echo $answer->json();
        Yii::app()->end();
    }

    /** Who the current session belongs to, as push-core wants to hear it. */
    public function answer(): AuthAnswer
    {
        $user = Yii::app()->getComponent($this->user);
        if ($user === null || $user->getIsGuest()) {
            return AuthAnswer::guest();
        }
        $userId = $this->userId !== null ? \call_user_func($this->userId, $user) : $user->getId();
        $namespace = isset($_SERVER['HTTP_X_PUSH_NAMESPACE']) ? (string) $_SERVER['HTTP_X_PUSH_NAMESPACE'] : '/';
        $rooms = $this->rooms !== null ? \call_user_func($this->rooms, $userId, $user, $namespace) : array();
        return AuthAnswer::user($userId, $rooms);
    }
}

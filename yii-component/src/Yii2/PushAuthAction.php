<?php

declare(strict_types=1);

namespace PushCore\Yii\Yii2;

use PushCore\Yii\AuthAnswer;
use Yii;
use yii\base\Action;
use yii\web\Response;
use yii\web\User;

/**
 * The endpoint push-core calls to learn who a connecting browser is
 * (push-core serve --auth-url), for Yii 2.
 *
 * push-core forwards the browser's cookies, so this action sees the user's
 * own session and answers 200 {"user_id": ..., "rooms": [...]} for a
 * logged-in user or 401 for a guest:
 *
 *     public function actions()
 *     {
 *         return [
 *             'auth' => [
 *                 'class' => \PushCore\Yii\Yii2\PushAuthAction::class,
 *                 'rooms' => fn ($userId, User $user, string $namespace) => ['group:' . $user->identity->group_id],
 *             ],
 *         ];
 *     }
 *
 * Guests must reach it (no AccessControl rule that redirects them to the
 * login page), since the daemon expects a 401, not a redirect.
 */
class PushAuthAction extends Action
{
    /**
     * @var callable|null function ($userId, User $user, string $namespace): array,
     * the rooms this user's connection joins. Null: no rooms.
     */
    public $rooms;

    /**
     * @var callable|null function (User $user): string|int, the id that
     * sendToUser() calls use. Null: $user->getId().
     */
    public $userId;

    /** @var string application component id of the web user. */
    public string $user = 'user';

    /** @return array{user_id: string|int|null, rooms: list<string>} */
    public function run(): array
    {
        $answer = $this->answer();
        $response = Yii::$app->getResponse();
        $response->format = Response::FORMAT_JSON;
        $response->statusCode = $answer->status;
        // Each answer is about one session; push-core caches it itself.
        $response->headers->set('Cache-Control', 'no-store');
        return $answer->body;
    }

    /** Who the current session belongs to, as push-core wants to hear it. */
    public function answer(): AuthAnswer
    {
        $user = Yii::$app->get($this->user, false);
        if (!$user instanceof User || $user->getIsGuest()) {
            return AuthAnswer::guest();
        }
        $userId = $this->userId !== null ? ($this->userId)($user) : $user->getId();
        $namespace = (string) (Yii::$app->getRequest()->getHeaders()->get('X-Push-Namespace') ?? '/');
        $rooms = $this->rooms !== null ? ($this->rooms)($userId, $user, $namespace) : [];
        return AuthAnswer::user($userId, $rooms);
    }
}

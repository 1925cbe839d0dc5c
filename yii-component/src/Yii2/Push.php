<?php

declare(strict_types=1);

namespace PushCore\Yii\Yii2;

use PushCore\Yii\PushComponentTrait;
use Yii;
use yii\base\Application;
use yii\base\Component;
use yii\base\InvalidConfigException;
use yii\db\Connection;
use yii\web\Response;

/**
 * push-core for Yii 2: publish to the browsers from PHP.
 *
 *     'components' => [
 *         'push' => [
 *             'class' => \PushCore\Yii\Yii2\Push::class,
 *             'socket' => '/run/push-core/push.sock', // or leave out for the default
 *             'namespace' => '/message_namespace',
 *         ],
 *     ],
 *
 *     Yii::$app->push->sendToUser($userId, 'order_shipped', $order);
 *
 * The same API as the Yii 1.1 component and the extension's PushClient; the
 * properties are documented in PushComponentTrait, the guide is docs/yii.md.
 * sendAfterCommit() follows the db component's transactions through
 * Connection::EVENT_COMMIT_TRANSACTION and EVENT_ROLLBACK_TRANSACTION.
 */
class Push extends Component
{
    use PushComponentTrait;

    /** @var array<int, true> connections whose transaction events are followed */
    private array $watchedConnections = [];

    /**
     * Checks the configuration, so a mistake stops the application at
     * start with a message saying what to change.
     *
     * @throws InvalidConfigException
     */
    public function init(): void
    {
        parent::init();
        $this->validatePushConfig();
    }

    protected function logError(string $message): void
    {
        Yii::error($message, 'push');
    }

    protected function logWarning(string $message): void
    {
        Yii::warning($message, 'push');
    }

    protected function configurationError(string $message): never
    {
        throw new InvalidConfigException($message);
    }

    /**
     * A web response raises EVENT_AFTER_SEND once the page went out, which
     * is when deferred pushes should go. A console application has no such
     * response, so the end of its request is the moment. The shutdown
     * function covers exit() without Yii's end(); the second call finds
     * nothing to send.
     */
    protected function hookEndOfRequest(): void
    {
        $app = Yii::$app;
        if ($app !== null) {
            $response = $app->has('response') ? $app->getResponse() : null;
            if ($response instanceof Response) {
                $response->on(Response::EVENT_AFTER_SEND, [$this, 'handleEndOfRequest']);
            } else {
                $app->on(Application::EVENT_AFTER_REQUEST, [$this, 'handleEndOfRequest']);
            }
        }
        register_shutdown_function([$this, 'handleEndOfRequest']);
    }

    /** The db connection, when it has a transaction open. */
    protected function transactionScope(): ?object
    {
        $db = Yii::$app?->get($this->db, false);
        return $db instanceof Connection && $db->getTransaction() !== null ? $db : null;
    }

    /**
     * Yii raises the commit and rollback events on the connection when the
     * outermost transaction ends. A rolled-back savepoint raises nothing, so
     * sends made inside it still wait for the outer commit (docs/yii.md).
     */
    protected function watchTransaction(object $scope): void
    {
        $id = spl_object_id($scope);
        if (isset($this->watchedConnections[$id])) {
            return;
        }
        $this->watchedConnections[$id] = true;
        $scope->on(Connection::EVENT_COMMIT_TRANSACTION, fn () => $this->releaseAfterCommit($scope));
        $scope->on(Connection::EVENT_ROLLBACK_TRANSACTION, fn () => $this->discardAfterCommit($scope));
    }
}

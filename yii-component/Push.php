<?php

declare(strict_types=1);

require_once __DIR__ . '/autoload.php';

use PushCore\Yii\PushComponentTrait;

/**
 * push-core for Yii 1.1: publish to the browsers from PHP.
 *
 * Copy or symlink this folder to protected/extensions/push and configure:
 *
 *     'components' => array(
 *         'Push' => array(
 *             'class'     => 'application.extensions.push.Push',
 *             'socket'    => '/run/push-core/push.sock', // or leave out for the default
 *             'namespace' => '/message_namespace',
 *         ),
 *     ),
 *
 * The old elephant.io component's calls keep working:
 *
 *     $push = Yii::app()->Push;
 *     $push->setNameSpace('/message_namespace');
 *     $push->sendMsg('message_event_type', $messageContent);
 *     $push->close();
 *
 * and sendToUser(), sendToUsers(), sendToRoom(), isOnline(), position(), stats(),
 * ping(), flush() and sendAfterCommit() are new. Its host and port settings
 * are accepted and ignored with one warning, and compat/extElephantIO.php
 * keeps its class name working (docs/yii.md, "Coming from elephant.io"). The properties are
 * documented in PushCore\Yii\PushComponentTrait, the guide is docs/yii.md.
 *
 * Yii 1.1 has no transaction events, so sendAfterCommit() sends are
 * released by this component's commit() or transaction(); see those.
 */
class Push extends CApplicationComponent
{
    use PushComponentTrait;

    /**
     * Checks the configuration, so a mistake stops the application at
     * start with a message saying what to change.
     *
     * @throws CException
     */
    public function init()
    {
        parent::init();
        $this->validatePushConfig();
    }

    /**
     * Commits $transaction (by default the open transaction of the db
     * component) and then makes the sends that sendAfterCommit() kept for
     * it. Use it instead of $transaction->commit().
     *
     * @param CDbTransaction|null $transaction
     */
    public function commit($transaction = null): void
    {
        $transaction = $transaction ?? $this->transactionScope();
        if ($transaction === null) {
            return;
        }
        $transaction->commit();
        $this->releaseAfterCommit($transaction);
    }

    /**
     * Rolls $transaction back (by default the open transaction of the db
     * component) and drops the sends kept for it. $transaction->rollback()
     * works too: what was never released by commit() is dropped at the end
     * of the request.
     *
     * @param CDbTransaction|null $transaction
     */
    public function rollback($transaction = null): void
    {
        $transaction = $transaction ?? $this->transactionScope();
        if ($transaction === null) {
            return;
        }
        $transaction->rollback();
        $this->discardAfterCommit($transaction);
    }

    /**
     * Runs $work in a transaction of the db component: commits and makes
     * the after-commit sends when it returns, rolls back and drops them when
     * it throws. Inside an already open transaction, $work simply joins it.
     *
     * @param callable(CDbConnection): mixed $work
     * @return mixed what $work returned
     */
    public function transaction(callable $work)
    {
        $db = Yii::app()->getComponent($this->db);
        if ($db->getCurrentTransaction() !== null) {
            return $work($db);
        }
        $transaction = $db->beginTransaction();
        try {
            $result = $work($db);
        } catch (Throwable $error) {
            if ($transaction->getActive()) {
                $transaction->rollback();
            }
            $this->discardAfterCommit($transaction);
            throw $error;
        }
        $this->commit($transaction);
        return $result;
    }

    protected function logError(string $message): void
    {
        Yii::log($message, CLogger::LEVEL_ERROR, 'push');
    }

    protected function logWarning(string $message): void
    {
        Yii::log($message, CLogger::LEVEL_WARNING, 'push');
    }

    protected function configurationError(string $message): never
    {
        throw new CException($message);
    }

    /**
     * CApplication raises onEndRequest once, from run() or end(), after the
     * output was produced. The shutdown function covers a script that exits
     * without going through Yii; the second call finds nothing to send.
     */
    protected function hookEndOfRequest(): void
    {
        Yii::app()->attachEventHandler('onEndRequest', array($this, 'handleEndOfRequest'));
        register_shutdown_function(array($this, 'handleEndOfRequest'));
    }

    /** The open transaction of the db component, if any. */
    protected function transactionScope(): ?object
    {
        $db = Yii::app()->getComponent($this->db);
        return $db instanceof CDbConnection ? $db->getCurrentTransaction() : null;
    }

    /** Yii 1.1 raises no event on commit: commit() and transaction() release the sends. */
    protected function watchTransaction(object $scope): void
    {
    }
}

<?php

/**
 * Run by FallbackTest with `php -n`: a PHP with no push extension and no
 * FFI, as on a host where ops has installed nothing yet. Configures the Yii
 * 1.1 component (on the stand-ins) with the default transport, publishes
 * once to SOCKET and once to a dead socket, and prints what happened as
 * JSON.
 *
 * Usage: php -n fallback.php SOCKET NAMESPACE DEAD_SOCKET
 */

declare(strict_types=1);

[, $socket, $namespace, $deadSocket] = $argv;

require __DIR__ . '/../stubs/yii1.php';
Yii::setPathOfAlias('application.extensions.push', dirname(__DIR__, 3) . '/yii-component');

$app = new CWebApplication(array('components' => array(
    'Push' => array(
        'class' => 'application.extensions.push.Push',
        'socket' => $socket,
        'namespace' => $namespace,
    ),
    'DeadPush' => array(
        'class' => 'application.extensions.push.Push',
        'socket' => $deadSocket,
        'namespace' => $namespace,
    ),
)));

// Creating the component includes Push.php, and with it PushException.
$transport = Yii::app()->Push->getActiveTransport();
$exception = new ReflectionClass('PushException');
echo json_encode(array(
    'extension_loaded' => extension_loaded('push'),
    'transport' => $transport,
    'exception_parent' => $exception->getParentClass()->getName(),
    'exception_internal' => $exception->isInternal(),
    'exception_file' => $exception->getFileName(),
    'constants' => $exception->getConstants(),
    'sent' => Yii::app()->Push->sendMsg('fallback', array('from' => 'pure PHP')),
    'dead' => Yii::app()->DeadPush->sendMsg('fallback', 1),
    'logs' => Yii::getLogger()->getLogs(),
)), "\n";

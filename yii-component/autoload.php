<?php

declare(strict_types=1);

/**
 * Class loading without Composer, for a Yii 1.1 site that copies this folder
 * to protected/extensions/push. Push.php and PushAuthAction.php include it.
 *
 * It maps the namespace PushCore\Yii\ to src/, as composer.json does, and
 * makes sure PushException exists. Yii 1.1's own autoloader passes on
 * namespaced classes it cannot find, so this loader is asked next.
 */
require_once __DIR__ . '/exception.php';

spl_autoload_register(static function (string $class): void {
    $prefix = 'PushCore\\Yii\\';
    if (strncmp($class, $prefix, \strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, \strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});

<?php

declare(strict_types=1);

// The component (with PushException from the extension when it is loaded,
// else from the polyfill) and the test support. The Yii stand-ins are loaded
// by the yii1/ and yii2/ suites themselves: only one of them per process.
require dirname(__DIR__, 2) . '/yii-component/autoload.php';
// The shared test harness (tests/support/php/), then this suite's own support.
// Class files are capitalised; the lower-case ones are scripts run as child processes.
foreach ([...glob(dirname(__DIR__) . '/support/php/*.php'), ...glob(__DIR__ . '/support/[A-Z]*.php')] as $file) {
    require_once $file;
}
require_once __DIR__ . '/TestCase.php';

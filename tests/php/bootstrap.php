<?php

// Loads the shared test harness (tests/support/php/) and this suite's own
// support classes. The tests run in a php that has the extension under test
// loaded (run.sh passes -d extension=...).

declare(strict_types=1);

if (!extension_loaded('push')) {
    fwrite(STDERR, "The push extension is not loaded; run the tests with tests/php/run.sh.\n");
    exit(1);
}

foreach ([...glob(dirname(__DIR__) . '/support/php/*.php'), ...glob(__DIR__ . '/support/*.php')] as $file) {
    require_once $file;
}

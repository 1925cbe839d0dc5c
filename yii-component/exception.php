<?php

declare(strict_types=1);

// PushException comes from the push extension when it is loaded. Only
// without it is the pure-PHP declaration included, so the class is never
// declared twice and code catching PushException works with every transport.
if (!class_exists('PushException', false)) {
    require __DIR__ . '/polyfill/PushException.php';
}

<?php

declare(strict_types=1);

/**
 * The one file a Yii 1.1 site replaces to move from the elephant.io
 * component to push-core without touching its configuration.
 *
 * Copy this file over protected/extensions/extElephantIO.php (the file the
 * old 'class' => 'application.extensions.extElephantIO' loads), with
 * push-core's yii-component folder at protected/extensions/push. The old
 * component entry keeps working as it is:
 *
 *     'ElephantIO' => array(
 *         'class' => 'application.extensions.extElephantIO',
 *         'host'  => 'http://127.0.0.1',   // accepted, ignored, one warning
 *         'port'  => 8000,                 // accepted, ignored
 *     ),
 *
 * and so does the code that calls it (setNameSpace(), sendMsg(), close()).
 * extElephantIO is the Push component under the old class name; everything
 * Push has is here too. The guide is docs/yii.md, "Coming from elephant.io".
 */

// Composer installs (require push-core/yii-push) autoload Push. Composer's
// loader is registered in front of Yii's, so asking it cannot reach Yii's
// include-path lookup, which warns about a missing file.
$composerHasPush = class_exists('Composer\\Autoload\\ClassLoader', false) && class_exists('Push');
if (!$composerHasPush && !class_exists('Push', false)) {
    // Copied next to the push folder (the documented install), or symlinked
    // from push-core's yii-component/compat/ (PHP resolves the link, so
    // __DIR__ is compat/ and Push.php is one level up).
    $pushFile = null;
    foreach ([__DIR__ . '/push/Push.php', dirname(__DIR__) . '/Push.php'] as $candidate) {
        if (is_file($candidate)) {
            $pushFile = $candidate;
            break;
        }
    }
    if ($pushFile === null) {
        throw new RuntimeException(
            'extElephantIO.php needs push-core\'s Yii component at ' . __DIR__ . '/push (Push.php was not found there);'
            . ' copy or symlink push-core\'s yii-component folder to it (docs/yii.md, "Coming from elephant.io")',
        );
    }
    require_once $pushFile;
    unset($pushFile, $candidate);
}
unset($composerHasPush);

/** The Push component under the elephant.io component's class name. */
class extElephantIO extends Push
{
}

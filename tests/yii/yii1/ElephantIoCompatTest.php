<?php

declare(strict_types=1);

namespace PushYiiTests\Yii1;

use PushCore\Yii\Transport;
use PushTests\Harness\Net;
use PushYiiTests\TestCase;

require_once __DIR__ . '/../stubs/yii1.php';

/**
 * A site that used the elephant.io component, moved to push-core by
 * replacing one file (yii-component/compat/extElephantIO.php) and keeping
 * its configuration and its code.
 *
 * Yii 1.1 is on no package registry these tests can reach, so this runs on
 * the Yii 1.1 STAND-INS of tests/yii/stubs/yii1.php, which follow Yii
 * 1.1's public API (path aliases, createComponent(), Yii::app()->ElephantIO,
 * Yii::log()). The daemon and the socket.io client receiving are the real
 * ones.
 *
 * The site is laid out on disk as the docs tell a site to do it:
 * protected/extensions/extElephantIO.php is a copy of the compat file and
 * protected/extensions/push is push-core's yii-component folder.
 */
final class ElephantIoCompatTest extends TestCase
{
    /** The old site's component class, kept by replacing the one file. */
    private const OLD_CLASS = 'application.extensions.extElephantIO';
    /** The same site with its class switched to push-core's. */
    private const PUSH_CLASS = 'application.extensions.push.Push';

    /** protected/ of the test site, made once per class. */
    private static string $protected;

    public static function setUpBeforeClass(): void
    {
        parent::setUpBeforeClass();
        self::$protected = Net::tempDir('push-yii-elephant-site-') . '/protected';
        mkdir(self::$protected . '/extensions', 0777, true);
        copy(self::componentDir() . '/compat/extElephantIO.php', self::$protected . '/extensions/extElephantIO.php');
        symlink(self::componentDir(), self::$protected . '/extensions/push');
    }

    protected function setUp(): void
    {
        // Yii 1.1 defines the "application" alias as protected/.
        \Yii::setPathOfAlias('application', self::$protected);
        \Yii::setLogger(new \CLogger());
    }

    private static function componentDir(): string
    {
        return \dirname(__DIR__, 3) . '/yii-component';
    }

    /**
     * The old site's application, its ElephantIO entry word for word plus
     * $more.
     *
     * @param array<string, mixed> $more
     */
    private function oldSite(string $class = self::OLD_CLASS, array $more = []): \CWebApplication
    {
        return new \CWebApplication(array(
            'components' => array(
                'ElephantIO' => array(
                    'class' => $class,
                    'host' => 'http://127.0.0.1',
                    'port' => 8000,
                ) + $more,
            ),
        ));
    }

    /** @return list<array{0: string, 1: string, 2: string}> */
    private static function pushLogs(string $level = ''): array
    {
        return \Yii::getLogger()->getLogs($level, ['push']);
    }

    /** The old code's call sequence, twice in one request: send, close, send again, close. */
    private static function sendLikeTheOldCode(string $firstNamespace, string $secondNamespace): void
    {
        $elephant = \Yii::app()->ElephantIO;
        $elephant->setNameSpace($firstNamespace);
        $elephant->sendMsg('message_event_type', array('text' => 'first', 'id' => 1));
        $elephant->close();

        $elephant = \Yii::app()->ElephantIO;
        $elephant->setNameSpace($secondNamespace);
        $elephant->sendMsg('message_event_type', array('text' => 'second', 'id' => 2));
        $elephant->close();
    }

    /**
     * The old configuration exactly (no socket, no transport key): the
     * socket comes from php.ini's push.socket, as ops would set it, and the
     * transport is the default, auto. push.socket is the extension's
     * setting, so this needs the extension; every transport is covered by
     * the test below.
     */
    public function testTheOldSiteRunsUnchanged(): void
    {
        $this->requireTransport(Transport::EXTENSION);
        $previous = ini_set('push.socket', self::$daemon->socket);
        try {
            $browsers = $this->browsers(['page' => null]);
            $this->oldSite();

            self::sendLikeTheOldCode(self::NS, self::NS);

            $this->assertInstanceOf(\Push::class, \Yii::app()->ElephantIO);
            $this->assertSame(Transport::EXTENSION, \Yii::app()->ElephantIO->getActiveTransport());
            $this->assertSame(array('text' => 'first', 'id' => 1), $browsers->event('page', 'message_event_type')['data']);
            $this->assertSame(array('text' => 'second', 'id' => 2), $browsers->event('page', 'message_event_type')['data']);
            $this->assertSame([], $browsers->drain(0.2));
            $this->assertOneDeprecationLine('extElephantIO', self::$daemon->socket);
        } finally {
            ini_set('push.socket', $previous === false ? '' : $previous);
        }
    }

    /**
     * The old site whole: its configuration word for word (component id
     * ElephantIO, class extElephantIO, host and port), its code's call
     * sequence (setNameSpace(), sendMsg(), close(), then setNameSpace() and
     * sendMsg() again in the same request), and its pages still on
     * socket.io-client 2.x, over both transports, a guest and a logged-in
     * user. Every page receives both messages, in order, and nothing else.
     *
     * @dataProvider transports
     */
    public function testAnOldPageOnSocketIo2ReceivesWhatTheOldCodeSends(string $transport): void
    {
        $pages = $this->oldPages(['guest page' => null, 'user page' => 42], ['message_event_type']);
        $polling = $this->oldPages(['polling page' => 7], ['message_event_type'], transport: 'polling');
        $this->oldSite(self::OLD_CLASS, ['socket' => self::$daemon->socket] + $this->transportConfig($transport));

        self::sendLikeTheOldCode(self::NS, self::NS);

        $this->assertSame($transport, \Yii::app()->ElephantIO->getActiveTransport());
        foreach ([[$pages, 'guest page'], [$pages, 'user page'], [$polling, 'polling page']] as [$browsers, $page]) {
            $this->assertSame(array('text' => 'first', 'id' => 1), $browsers->event($page, 'message_event_type')['data'], $page);
            $this->assertSame(array('text' => 'second', 'id' => 2), $browsers->event($page, 'message_event_type')['data'], $page);
        }
        $this->assertSame([], $pages->drain(0.2));
        $this->assertSame([], $polling->drain(0.0));
        $this->assertOneDeprecationLine('extElephantIO', self::$daemon->socket);
    }

    /** @return array<string, array{0: string, 1: string, 2: string}> */
    public function classesAndTransports(): array
    {
        $cases = [];
        foreach ($this->transports() as $name => [$transport]) {
            $cases["extElephantIO over {$name}"] = [self::OLD_CLASS, 'extElephantIO', $transport];
            $cases["Push over {$name}"] = [self::PUSH_CLASS, 'Push', $transport];
        }
        return $cases;
    }

    /**
     * close() and then setNameSpace() + sendMsg() in the same request, to
     * another namespace: both messages arrive, each where it was sent, and
     * host and port cost one warning for the component, not one per call.
     *
     * @dataProvider classesAndTransports
     */
    public function testSendingAfterCloseWorksOnEveryTransport(string $class, string $className, string $transport): void
    {
        $first = $this->browsers(['page' => null]);
        $second = $this->browsers(['root' => null], '/');
        $this->oldSite($class, ['socket' => self::$daemon->socket] + $this->transportConfig($transport));

        self::sendLikeTheOldCode(self::NS, '/');

        $this->assertSame($className, \get_class(\Yii::app()->ElephantIO));
        $this->assertSame($transport, \Yii::app()->ElephantIO->getActiveTransport());
        $this->assertSame(array('text' => 'first', 'id' => 1), $first->event('page', 'message_event_type')['data']);
        $this->assertSame(array('text' => 'second', 'id' => 2), $second->event('root', 'message_event_type')['data']);
        $this->assertSame([], $first->drain(0.2), 'the page got the message sent to another namespace');
        $this->assertSame([], $second->drain(0.0));
        $this->assertOneDeprecationLine($className, self::$daemon->socket);
    }

    public function testEachComponentSaysItOnce(): void
    {
        $this->oldSite(self::OLD_CLASS, ['socket' => self::$daemon->socket]);
        $elephant = \Yii::app()->ElephantIO;
        for ($i = 0; $i < 3; $i++) {
            $elephant->sendMsg('e', $i);
        }
        $this->assertCount(1, self::pushLogs());

        // A second application, as the next request builds: its component says it again.
        $this->oldSite(self::OLD_CLASS, ['socket' => self::$daemon->socket]);
        \Yii::app()->ElephantIO->sendMsg('e', 3);
        $this->assertCount(2, self::pushLogs(\CLogger::LEVEL_WARNING));
    }

    public function testOnlyTheSettingsGivenAreNamed(): void
    {
        new \CWebApplication(array('components' => array(
            'ElephantIO' => array('class' => self::PUSH_CLASS, 'port' => '8000', 'socket' => self::$daemon->socket),
        )));
        \Yii::app()->ElephantIO;

        $logs = self::pushLogs(\CLogger::LEVEL_WARNING);
        $this->assertCount(1, $logs);
        $this->assertStringContainsString("(port '8000')", $logs[0][0]);
    }

    public function testAConfigurationWithoutHostAndPortLogsNothing(): void
    {
        new \CWebApplication(array('components' => array(
            'ElephantIO' => array('class' => self::OLD_CLASS, 'socket' => self::$daemon->socket),
        )));
        $browsers = $this->browsers(['page' => null]);

        $this->assertSame(1, \Yii::app()->ElephantIO->setNameSpace(self::NS)->sendMsg('message_event_type', 'hi'));
        $browsers->event('page', 'message_event_type');
        $this->assertSame([], self::pushLogs());
    }

    /**
     * The compat file copied without push-core's folder next to it stops
     * with a message saying where the folder must go. Run in a PHP process
     * of its own: in this one Push is loaded already.
     */
    public function testTheCompatFileWithoutThePushFolderSaysWhatIsMissing(): void
    {
        $dir = Net::tempDir('push-yii-elephant-alone-');
        copy(self::componentDir() . '/compat/extElephantIO.php', "{$dir}/extElephantIO.php");
        $command = [PHP_BINARY, '-r', 'try { require $argv[1]; } catch (Throwable $e) { echo get_class($e), ": ", $e->getMessage(); }', "{$dir}/extElephantIO.php"];
        $process = proc_open($command, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
        $output = stream_get_contents($pipes[1]) . stream_get_contents($pipes[2]);
        proc_close($process);

        $this->assertSame(
            "RuntimeException: extElephantIO.php needs push-core's Yii component at {$dir}/push (Push.php was not found there);"
            . ' copy or symlink push-core\'s yii-component folder to it (docs/yii.md, "Coming from elephant.io")',
            $output,
        );
    }

    private function assertOneDeprecationLine(string $className, string $socket): void
    {
        $logs = self::pushLogs();
        $this->assertCount(1, $logs, 'expected exactly one line in the push category: ' . json_encode($logs));
        [$message, $level, $category] = $logs[0];
        $this->assertSame(\CLogger::LEVEL_WARNING, $level);
        $this->assertSame('push', $category);
        $this->assertSame(
            "{$className}: the elephant.io settings host and port are deprecated and ignored (host 'http://127.0.0.1', port 8000):"
            . " push-core is reached over its Unix socket {$socket}; remove them from the component's configuration"
            . ' (docs/yii.md, "Coming from elephant.io")',
            $message,
        );
    }
}

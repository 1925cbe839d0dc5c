<?php

declare(strict_types=1);

namespace PushTests\Support;

use PHPUnit\Framework\TestCase;
use PushClient;
use PushTests\Harness\Browsers;
use PushTests\Harness\Daemon;

/**
 * A test against a real daemon with real socket.io clients. Each test gets
 * its own daemon, so killing or pausing it cannot disturb another test.
 */
abstract class PushTestCase extends TestCase
{
    protected ?Daemon $daemon = null;
    /** The browsers openBrowsers() opened last. */
    protected ?Browsers $browsers = null;
    /** @var list<Browsers> every set opened, stopped at tearDown */
    private array $openedBrowsers = [];
    private int $markers = 0;

    /**
     * @param list<string> $extraArgs more `push-core serve` flags
     * @param array<string, string> $env variables set for the daemon
     */
    protected function startDaemon(array $extraArgs = [], array $env = []): Daemon
    {
        $this->daemon = new Daemon(['/ns', '/other'], AuthSite::url(), $extraArgs, $env);
        return $this->daemon;
    }

    /**
     * Browsers connected to the daemon, by name. Each logs in through a
     * cookie that the test auth site (fixtures/auth.php) turns into its
     * user and rooms; without a user it is a guest. With an offset, it
     * connects as a page rendered with that recovery offset would.
     *
     * @param array<string, array{namespace?: string, user?: string|int, rooms?: list<string>, offset?: string}> $clients
     */
    protected function openBrowsers(array $clients): Browsers
    {
        $specs = [];
        foreach ($clients as $name => $client) {
            $cookie = [];
            if (isset($client['user'])) {
                $cookie[] = 'user=' . rawurlencode((string) $client['user']);
            }
            if (isset($client['rooms'])) {
                $cookie[] = 'rooms=' . rawurlencode(implode(',', $client['rooms']));
            }
            $spec = ['name' => (string) $name, 'namespace' => $client['namespace'] ?? '/ns', 'cookie' => implode('; ', $cookie)];
            if (isset($client['offset'])) {
                $spec['offset'] = $client['offset'];
            }
            $specs[] = $spec;
        }
        $this->browsers = new Browsers(($this->daemon ?? $this->startDaemon())->url(), $specs);
        $this->openedBrowsers[] = $this->browsers;
        return $this->browsers;
    }

    protected function client(string $namespace = '/ns'): PushClient
    {
        return new PushClient(($this->daemon ?? $this->startDaemon())->socket, $namespace);
    }

    /**
     * Broadcasts a marker and waits until each named browser has it. The
     * daemon delivers in order, so anything published before the marker has
     * then had its chance to arrive: what is missing did not come.
     *
     * @param list<string> $browsers
     */
    protected function settle(array $browsers, string $namespace = '/ns'): void
    {
        $marker = 'marker-' . ++$this->markers;
        $this->client($namespace)->sendMsg($marker, null);
        foreach ($browsers as $name) {
            $this->browsers?->waitForEvent($name, $marker);
        }
    }

    protected function tearDown(): void
    {
        if ($this->hasFailed() && $this->daemon !== null) {
            // The daemon's log usually says why.
            fwrite(STDERR, "\n--- push-core log ---\n" . $this->daemon->log() . "\n");
        }
        foreach ($this->openedBrowsers as $browsers) {
            $browsers->stop();
        }
        $this->daemon?->stop();
        $this->openedBrowsers = [];
        $this->browsers = null;
        $this->daemon = null;
    }
}

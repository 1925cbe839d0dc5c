// An old page, as it was written for a Node socket.io 2.x server, left as it
// is: it loads the client from /socket.io/socket.io.js on the site's own
// address and connects with io('/message_namespace'). Here that path is
// push-core's `client_script` (the socket.io-client 2.5.0 browser bundle
// from npm) behind a real nginx with docs/nginx/push-core.conf, in front of
// the real daemon; headless Chromium runs the page, and real PHP with the
// built `push` extension sends the private message (docs/migrating.md).
//
// Started by tests/browser/run.sh like the other browser tests; it starts
// its own daemon, site and nginx, and needs target/debug/libpush.so (the
// demo that run.sh starts builds it).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { cookieFor, startAuthBackend } from '../integration/support/auth-backend.mjs';
import { freePort, repoRoot, startDaemon } from '../integration/support/daemon.mjs';
import { startNginx } from '../integration/support/nginx.mjs';
import { launchBrowser, screenshot } from './support/demo.mjs';

const BUNDLE = path.join(repoRoot, 'tests/node_modules/socket.io-client-v2/dist/socket.io.js');
const EXTENSION = path.join(repoRoot, 'target/debug/libpush.so');
const GUARD_MS = Number(process.env.BROWSER_TEST_GUARD_MS ?? 10000);

/** The old page, in the ES5 such pages were written in. `?transports=polling` limits it to polling. */
const OLD_PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>old page</title>
<script src="/socket.io/socket.io.js"></script>
</head>
<body>
<p id="status" data-state="connecting">connecting</p>
<ul id="messages"></ul>
<script>
  var options = location.search.indexOf('transports=polling') >= 0 ? { transports: ['polling'] } : {};
  var socket = io('/message_namespace', options);
  var statusLine = document.getElementById('status');
  socket.on('connect', function () {
    statusLine.setAttribute('data-state', 'connected');
    statusLine.textContent = 'connected over ' + socket.io.engine.transport.name;
  });
  socket.on('private', function (message) {
    var item = document.createElement('li');
    item.className = 'private';
    item.textContent = message.text;
    document.getElementById('messages').appendChild(item);
  });
</script>
</body>
</html>`;

/** The site: the old page at `/`, and nothing else. */
async function startSite() {
  const server = http.createServer((req, res) => {
    if (req.url === '/' || req.url.startsWith('/?')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(OLD_PAGE);
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** What PHP does on the site: PushClient::sendToUser(), from the `php` command with the built extension. */
async function sendFromPhp(socketPath, user, text) {
  const code = `
    $push = new PushClient($argv[1], '/message_namespace');
    echo $push->sendToUser((int) $argv[2], 'private', ['text' => $argv[3]]);`;
  const { stdout } = await promisify(execFile)(
    'php',
    ['-n', '-d', `extension=${EXTENSION}`, '-r', code, socketPath, String(user), text],
    { timeout: GUARD_MS },
  );
  return Number(stdout);
}

describe('an old page on the socket.io 2.5.0 bundle from /socket.io/socket.io.js', () => {
  const stops = [];
  let browser;
  let nginx;
  let daemon;

  before(async () => {
    const auth = await startAuthBackend();
    stops.push(() => auth.close());
    const site = await startSite();
    stops.push(() => site.close());
    daemon = await startDaemon({
      logLevel: 'info',
      args: ['--namespace', '/message_namespace', '--auth-url', auth.url, '--client-script', BUNDLE],
    });
    stops.push(() => daemon.cleanup());
    nginx = await startNginx(daemon, { sitePort: site.port });
    stops.push(() => nginx.stop());
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    while (stops.length > 0) await stops.pop()();
  });

  /** A browser context holding alice's (user 42's) session cookie, on the old page. */
  async function openAsAlice(query = '') {
    const context = await browser.newContext();
    context.setDefaultTimeout(GUARD_MS);
    const [, sid] = cookieFor('sid-42').match(/sid=([^;]+)/);
    await context.addCookies([{ name: 'sid', value: sid, url: nginx.url }]);
    const page = await context.newPage();
    const problems = [];
    const websockets = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('websocket', (socket) => websockets.push(socket.url()));
    await page.goto(`${nginx.url}/${query}`);
    await page.locator('#status[data-state="connected"]').waitFor().catch((error) => {
      throw new Error(`the old page did not connect: ${error.message}\npage errors: ${problems.join('; ')}\n`
        + `push-core's log:\n${daemon.logTail()}\nnginx:\n${nginx.logs()}`);
    });
    return { context, page, problems, websockets };
  }

  for (const [name, query, transport] of [
    ['with its default transports (polling, then WebSocket)', '', 'websocket'],
    ['on long-polling only', '?transports=polling', 'polling'],
  ]) {
    test(`receives a private message sent from PHP, ${name}`, async () => {
      const alice = await openAsAlice(query);
      try {
        // The client is the 2.x bundle push-core served, speaking protocol 4.
        assert.equal(await alice.page.evaluate(() => window.io.protocol), 4);
        if (transport === 'websocket') {
          await alice.page.waitForFunction(() => window.socket.io.engine.transport.name === 'websocket');
          assert.equal(alice.websockets.length, 1);
          assert.match(alice.websockets[0], new RegExp(`^ws://127\\.0\\.0\\.1:${nginx.port}/socket\\.io/\\?EIO=3`));
        } else {
          assert.equal(await alice.page.evaluate(() => window.socket.io.engine.transport.name), 'polling');
          assert.deepEqual(alice.websockets, []);
        }

        const text = `for alice ${name}`;
        assert.equal(await sendFromPhp(daemon.socketPath, 42, text), 1, 'the daemon knew alice by her cookie');
        await alice.page.locator('#messages li.private', { hasText: text }).waitFor();
        assert.deepEqual(alice.problems, []);
        await screenshot(alice.page, `old-page-${transport}`);
      } finally {
        await alice.context.close();
      }
    });
  }
});

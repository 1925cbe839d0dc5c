// The nginx configuration the docs point to (docs/nginx/push-core.conf), in
// a real nginx in front of the real daemon started with the configuration
// file of docs/migrating.md, read from that page: the real
// socket.io-client 2.5.0 (what old pages load) and 4.x connect
// through it over long-polling and WebSocket, are identified by their
// cookie and receive their private messages; the client bundle is served
// through it at /socket.io/socket.io.js; and push-core's per-address limit
// counts the browser's address that nginx forwards, not nginx's own.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';

import ioV4 from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';

import { cookieFor } from './support/auth-backend.mjs';
import { repoRoot, runBinary, tempDir } from './support/daemon.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { startNginx } from './support/nginx.mjs';
import { sendOk } from './support/publish.mjs';
import { Resources } from './support/resources.mjs';
import { GUARD_MS, waitUntil, withGuard } from './support/wait.mjs';

const CLIENTS = { '2.5.0': ioV2, '4.x': ioV4 };
const TRANSPORTS = ['polling', 'websocket'];
const SITE = 'https://www.example.com';
const BUNDLE = path.join(repoRoot, 'tests/node_modules/socket.io-client-v2/dist/socket.io.js');

/** The first line of the configuration file in docs/migrating.md. */
const GUIDE_CONFIG_MARK = '# /etc/push-core/push-core.toml';

/** The TOML block of docs/migrating.md that starts with GUIDE_CONFIG_MARK, written to a temporary file. */
function guideConfigFile() {
  const guide = fs.readFileSync(path.join(repoRoot, 'docs/migrating.md'), 'utf8');
  const block = guide.split('```toml\n').slice(1).map((rest) => rest.split('```')[0])
    .find((text) => text.startsWith(GUIDE_CONFIG_MARK));
  assert.ok(block, `docs/migrating.md has a toml block starting with ${GUIDE_CONFIG_MARK}`);
  const dir = resources.add(tempDir('push-core-guide-'), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const file = path.join(dir, 'push-core.toml');
  fs.writeFileSync(file, block);
  return file;
}

const resources = new Resources();
const sockets = [];
afterEach(async () => {
  while (sockets.length > 0) sockets.pop().disconnect();
  await resources.release();
});

/**
 * push-core with docs/migrating.md's configuration file, nginx in front
 * with the repository's file. The flags replace what differs on a test
 * machine: the listen address and socket (startDaemon's), the auth URL,
 * the bundle, and the trusted proxies: only nginx (127.0.0.1), so that the
 * test's browsers, on other loopback addresses, are browsers. The
 * namespace and the allowed origin are the guide's.
 */
async function site(extraArgs = []) {
  const auth = await resources.backend();
  const daemon = await resources.daemon({
    logLevel: 'info',
    args: [
      '--config', guideConfigFile(),
      '--auth-url', auth.url,
      '--client-script', BUNDLE,
      '--trusted-proxy', '127.0.0.1',
      ...extraArgs,
    ],
  });
  const nginx = await startNginx(daemon);
  resources.add(nginx, (n) => n.stop());
  return { auth, daemon, nginx };
}

/**
 * A page of the site at `from` (a loopback address), connected through
 * nginx to /message_namespace. Resolves once connected; rejects with the
 * client's connect error.
 */
async function page(io, nginx, { transport, cookie, from = '127.0.0.2', forwardedFor, origin = SITE }) {
  const headers = { origin };
  if (cookie !== undefined) headers.cookie = cookie;
  if (forwardedFor !== undefined) headers['x-forwarded-for'] = forwardedFor;
  const socket = io(`${nginx.url}/message_namespace`, {
    transports: [transport],
    upgrade: false,
    forceNew: true,
    reconnection: false,
    timeout: GUARD_MS,
    extraHeaders: headers,
    // Both transports open their requests from `from`.
    agent: new http.Agent({ localAddress: from }),
    localAddress: from,
  });
  sockets.push(socket);
  const events = [];
  for (const event of ['private', 'news']) socket.on(event, (message) => events.push({ event, message }));
  await withGuard(new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
    socket.once('error', reject);
  }), `a page over ${transport} through nginx to connect\n${nginx.logs()}`);
  return { socket, events };
}

const messages = (page, event) => page.events.filter((e) => e.event === event).map((e) => e.message);
const transportOf = (socket) => socket.io.engine.transport.name;

for (const [version, io] of Object.entries(CLIENTS)) {
  for (const transport of TRANSPORTS) {
    describe(`socket.io-client ${version} over ${transport}, through nginx`, () => {
      test('is identified by its cookie and receives its private messages only', async () => {
        const { auth, daemon, nginx } = await site();
        const alice = await page(io, nginx, { transport, cookie: cookieFor('sid-42') });
        const bob = await page(io, nginx, { transport, cookie: cookieFor('sid-7'), from: '127.0.0.3' });
        assert.equal(transportOf(alice.socket), transport);
        assert.ok(auth.callsFor('sid-42').length > 0, 'the cookie reached the auth URL through nginx');

        assert.equal(await sendOk(daemon.socketPath, {
          namespace: '/message_namespace', event: 'private', users: ['42'], data: { text: 'for alice' },
        }), 1);
        assert.equal(await sendOk(daemon.socketPath, { namespace: '/message_namespace', event: 'news', data: 'end' }), 2);
        await waitUntil(() => [alice, bob].every((p) => messages(p, 'news').length === 1), {
          what: () => `both pages to receive the broadcast\n${nginx.logs()}`,
        });
        assert.deepEqual(messages(alice, 'private'), [{ text: 'for alice' }]);
        assert.deepEqual(messages(bob, 'private'), []);
        // The page is on the transport it asked for from start to end.
        assert.equal(transportOf(alice.socket), transport);
      });
    });
  }
}

describe('the checks of docs/migrating.md', () => {
  test('push-core check-config accepts the guide\'s file (its bundle path replaced by one that exists here)', async () => {
    const { code, stdout, stderr } = await runBinary(['check-config', '--config', guideConfigFile(), '--client-script', BUNDLE]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^listen = "127\.0\.0\.1:3000"$/m);
    assert.match(stdout, /^namespaces = \[.*"\/message_namespace".*\]$/m);
    assert.match(stdout, /^allowed_origins = \["https:\/\/www\.example\.com"\]$/m);
  });

  test('an engine.io handshake through nginx for a 2.x page (EIO=3) and for a 4.x page (EIO=4)', async () => {
    const { nginx } = await site();
    const v3 = await fetch(`${nginx.url}/socket.io/?EIO=3&transport=polling`);
    assert.equal(v3.status, 200);
    assert.match(await v3.text(), /^\d+:0\{"sid":"/);
    const v4 = await fetch(`${nginx.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(v4.status, 200);
    assert.match(await v4.text(), /^0\{"sid":"/);
  });

  test('/socket.io/socket.io.js is the bundle, revalidated with 304', async () => {
    const { nginx } = await site();
    const url = `${nginx.url}/socket.io/socket.io.js`;
    const response = await fetch(url);
    assert.equal(response.status, 200);
    const body = await response.text();
    assert.match(body, /Socket\.IO v2\.5\.0/);
    const etag = response.headers.get('etag');
    assert.ok(etag, 'nginx passes the ETag on');
    const again = await fetch(url, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
  });

  test('a page from another site is refused (the guide\'s allowed_origins)', async () => {
    const { nginx } = await site();
    await assert.rejects(page(ioV2, nginx, { transport: 'websocket', origin: 'https://evil.example' }));
    await assert.rejects(page(ioV4, nginx, { transport: 'polling', origin: 'https://evil.example' }));
  });
});

describe('per-address limits behind nginx', () => {
  test('count the browser\'s address nginx forwards, not nginx\'s own, and ignore what the browser claims', async () => {
    const { daemon, nginx } = await site(['--max-connections-per-ip', '2']);
    const refused = 'push_connections_refused_total{reason="too_many_connections_from_address"}';
    for (const transport of TRANSPORTS) {
      await page(ioV4, nginx, { transport, from: '127.0.0.2' });
    }
    // The third page from 127.0.0.2 is one too many, on either transport.
    await assert.rejects(page(ioV4, nginx, { transport: 'websocket', from: '127.0.0.2' }));
    await assert.rejects(page(ioV4, nginx, { transport: 'polling', from: '127.0.0.2' }));
    assert.equal(seriesValue(await scrape(daemon), refused), 2);
    // The log line may reach us after the refused page heard of it.
    await waitUntil(() => /refused a connection.*too_many_connections_from_address.*address=127\.0\.0\.2\b/.test(daemon.log), {
      what: () => `the refusal of 127.0.0.2 in the log:\n${daemon.logTail()}`,
    });
    assert.doesNotMatch(daemon.log, /too_many_connections_from_address.*address=127\.0\.0\.1\b/);

    // Another browser, behind the same nginx, has its own budget.
    await page(ioV4, nginx, { transport: 'websocket', from: '127.0.0.3' });
    await page(ioV2, nginx, { transport: 'polling', from: '127.0.0.4' });

    // A browser naming another address in its own X-Forwarded-For is still
    // counted as itself: nginx appends the address it sees, and push-core
    // reads from the right.
    await page(ioV4, nginx, { transport: 'websocket', from: '127.0.0.5', forwardedFor: '198.51.100.1' });
    await page(ioV4, nginx, { transport: 'websocket', from: '127.0.0.5', forwardedFor: '198.51.100.2' });
    await assert.rejects(page(ioV4, nginx, { transport: 'websocket', from: '127.0.0.5', forwardedFor: '198.51.100.3' }));
    await waitUntil(() => /too_many_connections_from_address.*address=127\.0\.0\.5\b/.test(daemon.log), {
      what: () => `the refusal of 127.0.0.5 in the log:\n${daemon.logTail()}`,
    });
    assert.equal(seriesValue(await scrape(daemon), refused), 3);
  });
});

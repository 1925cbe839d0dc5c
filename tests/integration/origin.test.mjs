// --allowed-origin: handshakes from other origins are refused on both
// transports (cross-site WebSocket hijacking would otherwise expose a
// visitor's private stream); allowed origins get CORS with credentials; a
// request without Origin (not from a browser page) is let through.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool, TRANSPORTS } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { sendOk } from './support/publish.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { withGuard } from './support/wait.mjs';

const ALLOWED = 'https://app.example';
const ALSO_ALLOWED = 'http://localhost:8080';
const EVIL = 'https://evil.example';

const HANDSHAKE = '/socket.io/?EIO=4&transport=polling';

/** A polling handshake GET, as a page would send it. */
function pollingHandshake(daemon, origin) {
  const headers = origin === undefined ? {} : { origin };
  return fetch(`${daemon.url}${HANDSHAKE}`, { headers });
}

/**
 * A raw WebSocket upgrade request for the engine.io endpoint; resolves with
 * the status: 101 when the server upgraded, otherwise its HTTP answer.
 */
function websocketUpgrade(daemon, origin) {
  const headers = {
    connection: 'Upgrade',
    upgrade: 'websocket',
    'sec-websocket-version': '13',
    'sec-websocket-key': crypto.randomBytes(16).toString('base64'),
  };
  if (origin !== undefined) headers.origin = origin;
  const answered = new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1',
      port: daemon.port,
      path: '/socket.io/?EIO=4&transport=websocket',
      headers,
    });
    request.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve({ status: response.statusCode });
    });
    request.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (d) => { body += d; });
      response.on('end', () => resolve({ status: response.statusCode, body }));
    });
    request.on('error', reject);
    request.end();
  });
  return withGuard(answered, 'the answer to a WebSocket upgrade');
}

describe('with --allowed-origin', () => {
  let backend;
  let daemon;
  const clients = new ClientPool();
  before(async () => {
    backend = await startAuthBackend();
    daemon = await startDaemon({
      args: ['--auth-url', backend.url, '--allowed-origin', ALLOWED, '--allowed-origin', `${ALSO_ALLOWED}/`],
    });
  });
  afterEach(() => clients.closeAllAndSettle(daemon));
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
    await backend?.close();
  });

  test('a polling handshake from another origin gets 403', async () => {
    const response = await pollingHandshake(daemon, EVIL);
    await response.text();
    assert.equal(response.status, 403);
    assert.equal(response.headers.get('access-control-allow-origin'), null);
  });

  test('origins that merely look like an allowed one are refused', async () => {
    for (const origin of [
      'https://app.example.evil.example',
      'http://app.example',
      'https://app.example:8443',
      'https://APP.example.',
      'null',
    ]) {
      const response = await pollingHandshake(daemon, origin);
      await response.text();
      assert.equal(response.status, 403, origin);
    }
  });

  test('a polling handshake from an allowed origin gets CORS with credentials', async () => {
    for (const origin of [ALLOWED, ALSO_ALLOWED]) {
      const response = await pollingHandshake(daemon, origin);
      const body = await response.text();
      assert.equal(response.status, 200, origin);
      assert.match(body, /^0\{"sid":/, 'an engine.io open packet');
      assert.equal(response.headers.get('access-control-allow-origin'), origin);
      assert.equal(response.headers.get('access-control-allow-credentials'), 'true');
    }
  });

  test('a CORS preflight from an allowed origin is answered, from another refused', async () => {
    const preflight = (origin) => fetch(`${daemon.url}${HANDSHAKE}`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    const allowed = await preflight(ALLOWED);
    await allowed.text();
    assert.ok(allowed.status >= 200 && allowed.status < 300, `status ${allowed.status}`);
    assert.equal(allowed.headers.get('access-control-allow-origin'), ALLOWED);
    assert.equal(allowed.headers.get('access-control-allow-credentials'), 'true');
    assert.match(allowed.headers.get('access-control-allow-methods') ?? '', /POST/);

    const refused = await preflight(EVIL);
    await refused.text();
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
  });

  test('a polling handshake without Origin is let through', async () => {
    const response = await pollingHandshake(daemon, undefined);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /^0\{"sid":/);
  });

  test('a WebSocket upgrade from another origin gets 403', async () => {
    assert.equal((await websocketUpgrade(daemon, EVIL)).status, 403);
  });

  test('a WebSocket upgrade from an allowed origin, or without Origin, is accepted', async () => {
    assert.equal((await websocketUpgrade(daemon, ALLOWED)).status, 101);
    assert.equal((await websocketUpgrade(daemon, undefined)).status, 101);
  });

  for (const transport of TRANSPORTS) {
    test(`the socket.io client from another origin cannot connect, even with a valid cookie (${transport})`, async () => {
      // A cookie the auth cache has never seen, so a call would show.
      const sid = `sid-42; hijack=${transport}`;
      const error = await clients.refused(daemon, { transport, origin: EVIL, cookie: cookieFor(sid) });
      assert.ok(error instanceof Error);
      // The hostile page's connection never reached the auth backend, and
      // never joined user 42.
      assert.equal(backend.calls.filter((call) => call.cookie.includes(`hijack=${transport}`)).length, 0);
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'secret' }), 0);
    });

    test(`the socket.io client from an allowed origin connects and receives (${transport})`, async () => {
      const user = await clients.connect(daemon, { transport, origin: ALLOWED, cookie: cookieFor('sid-42') });
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'hello' }), 1);
      assert.equal(await user.waitFor('private'), 'hello');
    });
  }

  test('refusals are counted under reason "origin_not_allowed"', async () => {
    const count = (text) => seriesValue(text, 'push_connections_refused_total{reason="origin_not_allowed"}');
    const before = count(await scrape(daemon));
    await (await pollingHandshake(daemon, EVIL)).text();
    assert.equal(count(await scrape(daemon)), before + 1);
  });
});

describe('without --allowed-origin', () => {
  let daemon;
  before(async () => { daemon = await startDaemon(); });
  after(async () => { await daemon?.cleanup(); });

  test('any origin may connect, with CORS for that origin', async () => {
    const response = await pollingHandshake(daemon, EVIL);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /^0\{"sid":/);
    assert.equal(response.headers.get('access-control-allow-origin'), EVIL);
    assert.equal((await websocketUpgrade(daemon, EVIL)).status, 101);
  });
});

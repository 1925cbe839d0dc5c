// The optional HTTP publish API, for app servers on other hosts: off by
// default; when on, every request needs `Authorization: Bearer <token>`,
// and it speaks the publish socket's operations as JSON.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { runBinary, startDaemon } from './support/daemon.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { publisherFor } from './support/publish.mjs';

const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuvwxyz';

const api = (daemon, path, { token = TOKEN, method = 'GET', body, headers = {} } = {}) => {
  const auth = token === null ? {} : { authorization: `Bearer ${token}` };
  return fetch(`${daemon.url}${path}`, {
    method,
    headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
};
/** Refusals counted so far; the series only appears once there is one. */
const forbiddenCount = async (daemon) => {
  const text = await scrape(daemon);
  const series = 'push_protocol_errors_total{code="forbidden"}';
  return text.includes(`${series} `) ? seriesValue(text, series) : 0;
};
const json = async (response) => ({ status: response.status, body: await response.json() });

describe('the HTTP publish API when turned on', () => {
  let backend;
  let daemon;
  let user42;
  let guest;
  const clients = new ClientPool();

  before(async () => {
    backend = await startAuthBackend();
    daemon = await startDaemon({ args: ['--auth-url', backend.url, '--http-publish-token', TOKEN, '--max-frame-size', '4096'] });
    user42 = await clients.connect(daemon, { cookie: cookieFor('sid-42'), name: 'user 42' });
    guest = await clients.connect(daemon, { name: 'guest' });
  });
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
    await backend?.close();
  });

  test('refuses requests without the token or with a wrong one with 401, and delivers nothing', async () => {
    const attempts = [
      ['no header', null, {}],
      ['a wrong token', 'wrong-token-0123456789abcdefghijklmnopqrstuvwxyz', {}],
      ['the token with one character changed', `${TOKEN.slice(0, -1)}Z`, {}],
      ['a prefix of the token', TOKEN.slice(0, 10), {}],
      ['the token with extra text', `${TOKEN}x`, {}],
      ['an empty bearer', '', {}],
      ['another scheme', null, { authorization: `Basic ${Buffer.from(`api:${TOKEN}`).toString('base64')}` }],
      ['the token without "Bearer"', null, { authorization: TOKEN }],
    ];
    const before = await forbiddenCount(daemon);
    for (const [what, token, headers] of attempts) {
      for (const [method, path, body] of [['POST', '/api/publish', { event: 'sneaky', data: what }], ['GET', '/api/online?user=42'], ['GET', '/api/stats']]) {
        const answer = await json(await api(daemon, path, { token, method, body, headers }));
        assert.equal(answer.status, 401, `${what}: ${method} ${path}`);
        assert.deepEqual([answer.body.error, answer.body.code], ['forbidden', 9], `${what}: ${JSON.stringify(answer.body)}`);
      }
    }
    assert.equal(await forbiddenCount(daemon), before + attempts.length * 3);
    assert.match(daemon.log, /WARN.*refused an HTTP publish request with a missing or wrong token/);
    assert.ok(!daemon.log.includes(TOKEN), 'the token is never logged');
    await clients.flush(publisherFor(daemon), [user42, guest]);
    assert.deepEqual(guest.received('sneaky'), []);
  });

  test('publishes with the token: to everyone, to a user, to a room, with except_users', async () => {
    const publish = async (body) => json(await api(daemon, '/api/publish', { method: 'POST', body }));
    assert.deepEqual(await publish({ event: 'all', data: { n: 1 } }), { status: 200, body: { recipients: 2, partial: false } });
    assert.deepEqual(await publish({ event: 'dm', users: [42], data: 'for 42' }), { status: 200, body: { recipients: 1, partial: false } });
    assert.deepEqual(await publish({ event: 'group', rooms: ['group:7'], data: 'g' }), { status: 200, body: { recipients: 1, partial: false } });
    assert.deepEqual(await publish({ namespace: '/', event: 'rest', except_users: ['42'], data: null }), { status: 200, body: { recipients: 1, partial: false } });
    assert.deepEqual(await user42.waitFor('all'), { n: 1 });
    assert.equal(await user42.waitFor('dm'), 'for 42');
    assert.equal(await user42.waitFor('group'), 'g');
    assert.equal(await guest.waitFor('rest'), null);
    await clients.flush(publisherFor(daemon), [user42, guest]);
    assert.deepEqual(guest.received('dm'), []);
    assert.deepEqual(user42.received('rest'), []);
  });

  test('answers online and stats with the token', async () => {
    assert.deepEqual(await json(await api(daemon, '/api/online?namespace=/&user=42')), { status: 200, body: { online: true, connections: 1, partial: false } });
    assert.deepEqual(await json(await api(daemon, '/api/online?user=nobody')), { status: 200, body: { online: false, connections: 0, partial: false } });
    const stats = await json(await api(daemon, '/api/stats'));
    assert.equal(stats.status, 200);
    assert.equal(stats.body.connections, 2);
  });

  test('refuses bad requests with the protocol\'s error codes', async () => {
    const cases = [
      [{ event: 'x' }, 400, 'malformed_frame', 'no data'],
      ['{"event": "x", "data": ', 400, 'malformed_frame', 'JSON cut short'],
      [{ event: 'x', data: 1, surprise: true }, 400, 'malformed_frame', 'an unknown field'],
      [{ event: 'connect', data: 1 }, 400, 'invalid_request', 'a reserved event'],
      [{ event: '', data: 1 }, 400, 'invalid_request', 'an empty event'],
      [{ namespace: '/nowhere', event: 'x', data: 1 }, 404, 'unknown_namespace', 'an unknown namespace'],
      [`{"event":"x","data":${'['.repeat(200)}${']'.repeat(200)}}`, 400, null, 'nesting over 128'],
    ];
    for (const [body, status, error, what] of cases) {
      const response = await api(daemon, '/api/publish', { method: 'POST', body });
      assert.equal(response.status, status, what);
      const answer = await response.json();
      if (error) assert.equal(answer.error, error, `${what}: ${JSON.stringify(answer)}`);
    }
    // A body over max_frame_size is refused before it is parsed.
    const big = await api(daemon, '/api/publish', { method: 'POST', body: { event: 'big', data: 'x'.repeat(8192) } });
    assert.equal(big.status, 413);
    await big.arrayBuffer();
    await clients.flush(publisherFor(daemon), [guest]);
    assert.deepEqual(guest.received('big'), []);
    assert.deepEqual(guest.received('x'), []);
  });
});

describe('the HTTP publish API by default', () => {
  let daemon;
  before(async () => { daemon = await startDaemon(); });
  after(async () => { await daemon?.cleanup(); });

  test('is off: its paths are not found, even with a token', async () => {
    for (const [method, path] of [['POST', '/api/publish'], ['GET', '/api/online?user=1'], ['GET', '/api/stats']]) {
      const response = await api(daemon, path, { method, body: method === 'POST' ? { event: 'x', data: 1 } : undefined });
      assert.equal(response.status, 404, `${method} ${path}`);
      await response.arrayBuffer();
    }
  });
});

describe('the HTTP publish token', () => {
  test('must be at least 32 characters: a shorter one stops the daemon with exit code 2', async () => {
    const result = await runBinary(['serve', '--listen', '127.0.0.1:0', '--socket', '/nonexistent/push.sock', '--http-publish-token', 'short']);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /http_publish_token/);
    assert.ok(!result.stderr.includes('short'), 'the rejected token is not echoed');
  });
});

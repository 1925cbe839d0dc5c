// The command-line tools against a running daemon: `send` (DATA or stdin,
// its count and its errors), `stats`, `online` and `position`.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { runBinary, startDaemon } from './support/daemon.mjs';
import { online, send, sendOk, stats } from './support/publish.mjs';
import { waitUntil } from './support/wait.mjs';

describe('push-core tools', () => {
  let backend;
  let daemon;
  const clients = new ClientPool();
  before(async () => {
    backend = await startAuthBackend();
    daemon = await startDaemon({ args: ['--auth-url', backend.url, '--namespace', '/chat'] });
  });
  afterEach(() => clients.closeAllAndSettle(daemon));
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
    await backend?.close();
  });

  test('online tells whether a user is connected, per namespace', async () => {
    const offline = { namespace: '/', user: '42', online: false, connections: 0, partial: false };
    assert.deepEqual(await online(daemon.socketPath, '/', '42'), offline);

    await clients.connect(daemon, { transport: 'websocket', cookie: cookieFor('sid-42') });
    await clients.connect(daemon, { transport: 'polling', cookie: cookieFor('sid-42') });
    await clients.connect(daemon, { transport: 'websocket', cookie: cookieFor('sid-7') });
    await clients.connect(daemon, { transport: 'websocket' });
    assert.deepEqual(await online(daemon.socketPath, '/', '42'), { namespace: '/', user: '42', online: true, connections: 2, partial: false });
    assert.deepEqual(await online(daemon.socketPath, '/', '7'), { namespace: '/', user: '7', online: true, connections: 1, partial: false });
    assert.deepEqual(await online(daemon.socketPath, '/chat', '42'), { namespace: '/chat', user: '42', online: false, connections: 0, partial: false });
    assert.deepEqual(await online(daemon.socketPath, '/', '4'), { namespace: '/', user: '4', online: false, connections: 0, partial: false });

    // Closing one tab leaves the other.
    clients.clients[0].close();
    await waitUntil(async () => (await online(daemon.socketPath, '/', '42')).connections === 1, {
      what: 'user 42 to have one tab left',
    });
    assert.equal((await online(daemon.socketPath, '/', '42')).online, true);

    clients.closeAll();
    await waitUntil(async () => !(await online(daemon.socketPath, '/', '42')).online, {
      what: 'user 42 to go offline after closing both tabs',
    });
  });

  test('online in an unknown namespace fails', async () => {
    const result = await runBinary(['online', '--socket', daemon.socketPath, '--namespace', '/nowhere', '42']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /unknown_namespace/);
  });

  test('position prints the namespace offset, which moves with each publish to that namespace only', async () => {
    const position = async (namespace) => {
      const result = await runBinary(['position', '--socket', daemon.socketPath, '--namespace', namespace]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^\S+\n$/);
      return result.stdout.trim();
    };
    const chat = await position('/chat');
    const root = await position('/');
    assert.equal(await position('/chat'), chat);
    await sendOk(daemon.socketPath, { namespace: '/chat', event: 'e', data: 1 });
    assert.notEqual(await position('/chat'), chat);
    assert.equal(await position('/'), root);
  });

  test('position in an unknown namespace fails', async () => {
    const result = await runBinary(['position', '--socket', daemon.socketPath, '--namespace', '/nowhere']);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /unknown_namespace/);
  });

  test('position fails with recovery_off when the daemon runs without recovery', async () => {
    const plain = await startDaemon({ args: ['--recovery-window', '0'] });
    try {
      const result = await runBinary(['position', '--socket', plain.socketPath]);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /recovery is off.*\[recovery_off \(13\)\]/);
    } finally {
      await plain.cleanup();
    }
  });

  test('stats reports connections per namespace and transport, users, publishes and auth', async () => {
    const before = await stats(daemon.socketPath);
    for (const field of ['connections', 'publishes', 'deliveries', 'protocol_errors']) {
      assert.equal(typeof before[field], 'number', field);
    }
    for (const field of ['connected', 'accepted_total']) assert.equal(typeof before.publishers?.[field], 'number', field);
    for (const field of ['calls', 'failures', 'cache_hits']) assert.equal(typeof before.auth?.[field], 'number', field);
    assert.equal(before.connections, 0);
    assert.deepEqual(before.namespaces['/'], { connections: 0, websocket: 0, polling: 0, protocol4: 0, users_online: 0 });
    assert.deepEqual(before.namespaces['/chat'], { connections: 0, websocket: 0, polling: 0, protocol4: 0, users_online: 0 });

    // Cookies no earlier test used, so the auth cache starts cold for them.
    const cookie42 = `${cookieFor('sid-42')}; visit=stats`;
    const cookie7 = `${cookieFor('sid-7')}; visit=stats`;
    const a = await clients.connect(daemon, { transport: 'websocket', cookie: cookie42 });
    const b = await clients.connect(daemon, { transport: 'polling', cookie: cookie42 });
    const c = await clients.connect(daemon, { transport: 'polling' });
    const d = await clients.connect(daemon, { transport: 'upgrade', namespace: '/chat', cookie: cookie7 });
    assert.equal(await sendOk(daemon.socketPath, { event: 'all', data: 1 }), 3);
    assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'dm', users: ['7'], data: 2 }), 1);
    await Promise.all([a.waitFor('all'), b.waitFor('all'), c.waitFor('all'), d.waitFor('dm')]);

    // The upgraded client is counted under websocket once the server has
    // seen the upgrade complete.
    const now = await waitUntil(async () => {
      const s = await stats(daemon.socketPath);
      return s.namespaces['/chat'].websocket === 1 ? s : null;
    }, { what: 'the upgraded client to count as websocket' });
    assert.equal(now.connections, 4);
    assert.deepEqual(now.namespaces['/'], { connections: 3, websocket: 1, polling: 2, protocol4: 0, users_online: 1 });
    assert.deepEqual(now.namespaces['/chat'], { connections: 1, websocket: 1, polling: 0, protocol4: 0, users_online: 1 });
    assert.equal(now.publishes, before.publishes + 2);
    assert.equal(now.deliveries, before.deliveries + 4);
    assert.ok(now.publishers.accepted_total >= before.publishers.accepted_total + 3);
    assert.equal(typeof now.publishers.connected, 'number');
    assert.equal(now.protocol_errors, before.protocol_errors);
    // Two new cookie sets asked, the second tab of 42 answered from the cache.
    assert.equal(now.auth.calls, before.auth.calls + 2);
    assert.equal(now.auth.cache_hits, before.auth.cache_hits + 1);
    assert.equal(now.auth.failures, before.auth.failures);
  });

  test('send reads DATA from stdin with -', async () => {
    const client = await clients.connect(daemon, {});
    const result = await send(daemon.socketPath, { event: 'piped', stdin: '{\n  "multi": "line",\n  "n": [1, 2]\n}\n' });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '1\n');
    assert.deepEqual(await client.waitFor('piped'), { multi: 'line', n: [1, 2] });
  });

  test('send prints 0 when nobody is connected', async () => {
    assert.equal(await sendOk(daemon.socketPath, { event: 'void', data: null }), 0);
  });

  const FAILURES = [
    ['DATA that is not JSON', { event: 'e', raw: '{"a":' }, /invalid_payload/],
    ['stdin that is not JSON', { event: 'e', stdin: 'hello' }, /invalid_payload/],
    ['a reserved event name', { event: 'disconnect', data: 1 }, /reserved/],
    ['an unknown namespace', { namespace: '/nope', event: 'e', data: 1 }, /unknown_namespace/],
  ];
  for (const [what, message, pattern] of FAILURES) {
    test(`send fails with exit 1 and a message for ${what}`, async () => {
      const client = await clients.connect(daemon, {});
      const result = await send(daemon.socketPath, message);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^push-core: /);
      assert.match(result.stderr, pattern);
      await clients.flush((m) => sendOk(daemon.socketPath, m), [client]);
      assert.deepEqual(client.events.map((e) => e.event), ['marker']);
    });
  }

  test('the tools fail clearly when no daemon listens on the socket', async () => {
    const socket = `${daemon.dir}/absent.sock`;
    for (const args of [
      ['send', '--socket', socket, '--event', 'e', '1'],
      ['stats', '--socket', socket],
      ['online', '--socket', socket, '42'],
      ['position', '--socket', socket],
    ]) {
      const result = await runBinary(args);
      assert.equal(result.code, 1, args[0]);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /cannot connect to push-core at .*absent\.sock/, args[0]);
    }
  });

  test('the tools read the socket path from PUSH_CORE_SOCKET', async () => {
    const result = await runBinary(['stats'], { env: { PUSH_CORE_SOCKET: daemon.socketPath } });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(typeof JSON.parse(result.stdout).connections, 'number');
  });
});

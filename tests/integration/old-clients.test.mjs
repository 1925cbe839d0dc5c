// Old pages keep their client: the real socket.io-client 1.7.4 and 2.5.0
// (socket.io protocol 4, engine.io 3), pinned in package-lock.json, against
// the real daemon over WebSocket and long-polling: broadcasts, private and
// room messages with cookie auth, namespaces, origin checks, the protocol
// label on the connection gauges, and recovery with the offset in the
// connect query (docs/old-clients.md, docs/recovery.md).

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';

import ioV1 from 'socket.io-client-v1';
import ioV2 from 'socket.io-client-v2';

import { cookieFor } from './support/auth-backend.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { sendOk } from './support/publish.mjs';
import { Resources } from './support/resources.mjs';
import { GUARD_MS, waitUntil, withGuard } from './support/wait.mjs';

const CLIENTS = { '1.7.4': ioV1, '2.5.0': ioV2 };
const TRANSPORTS = ['websocket', 'polling'];
const ALLOWED = 'https://app.example';
const EVIL = 'https://evil.example';
/** The events these tests publish; old clients have no catch-all listener. */
const EVENTS = ['news', 'private', 'group', 'missed', 'live'];

const resources = new Resources();
const sockets = [];
afterEach(async () => {
  while (sockets.length > 0) sockets.pop().disconnect();
  await resources.release();
});

/** What an old page records: each event with its message and offset, and each push:recovery status. */
function record(socket) {
  const seen = { events: [], statuses: [] };
  socket.on('push:recovery', (status) => seen.statuses.push(status));
  for (const event of EVENTS) {
    socket.on(event, (message, meta) => seen.events.push({ event, message, offset: meta?.offset }));
  }
  return seen;
}

/** `upgrade` is the clients' default: polling first, then WebSocket. */
const transportOptions = (transport) => (transport === 'upgrade'
  ? { transports: ['polling', 'websocket'], upgrade: true }
  : { transports: [transport], upgrade: false });

const options = (transport, { cookie, origin = ALLOWED, query } = {}) => ({
  ...transportOptions(transport),
  forceNew: true,
  reconnection: false,
  timeout: GUARD_MS,
  extraHeaders: { origin, ...(cookie === undefined ? {} : { cookie }) },
  ...(query === undefined ? {} : { query }),
});

/**
 * Connects an old client to `namespace` and resolves once it is connected.
 * A query (the recovery offset) goes on the Manager, so it travels in the
 * engine.io request and not in the namespace's CONNECT packet (see
 * docs/old-clients.md for why).
 */
async function connect(io, daemon, { transport, namespace = '/chat', cookie, origin, query }) {
  const manager = new io.Manager(daemon.url, options(transport, { cookie, origin, query }));
  const socket = manager.socket(namespace);
  sockets.push(socket);
  const seen = record(socket);
  const connected = new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
    socket.once('error', reject);
  });
  await withGuard(connected, `${namespace} over ${transport} to connect\n${daemon.logTail?.() ?? ''}`);
  if (transport === 'upgrade' && manager.engine.transport.name !== 'websocket') {
    await withGuard(new Promise((resolve) => manager.engine.once('upgrade', resolve)), 'the upgrade to WebSocket');
  }
  return { socket, seen };
}

const received = (seen, event) => seen.events.filter((e) => e.event === event).map((e) => e.message);

async function daemonWithSite() {
  const site = await resources.backend();
  const daemon = await resources.daemon({
    args: ['--auth-url', site.url, '--namespace', '/chat', '--allowed-origin', ALLOWED],
  });
  return { site, daemon };
}

for (const [version, io] of Object.entries(CLIENTS)) {
  for (const transport of TRANSPORTS) {
    describe(`socket.io-client ${version} over ${transport}`, () => {
      test('receives broadcasts, its user\'s private messages and its rooms\' messages, identified by its cookie', async () => {
        const { site, daemon } = await daemonWithSite();
        const alice = await connect(io, daemon, { transport, cookie: cookieFor('sid-42') });
        const bob = await connect(io, daemon, { transport, cookie: cookieFor('sid-7') });
        const guest = await connect(io, daemon, { transport });
        assert.ok(site.callsFor('sid-42').length > 0, 'the auth URL was asked with the cookie the old client sent');

        assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'news', data: { n: 1 } }), 3);
        assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'private', users: ['42'], data: 'for 42' }), 1);
        assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'group', rooms: ['group:8'], data: 'group 8' }), 1);
        // Published last: once it arrived everywhere, the others have had their chance.
        assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'live', data: 'end' }), 3);
        await waitUntil(() => [alice, bob, guest].every((c) => received(c.seen, 'live').length === 1), {
          what: 'every old client to receive the last broadcast',
        });

        for (const client of [alice, bob, guest]) assert.deepEqual(received(client.seen, 'news'), [{ n: 1 }]);
        assert.deepEqual(received(alice.seen, 'private'), ['for 42']);
        assert.deepEqual(received(bob.seen, 'private'), []);
        assert.deepEqual(received(guest.seen, 'private'), []);
        assert.deepEqual(received(bob.seen, 'group'), ['group 8']);
        assert.deepEqual(received(alice.seen, 'group'), []);
        // With recovery on, each event carries its offset, and each connect a status.
        assert.match(alice.seen.events[0].offset, /-/);
        assert.equal(alice.seen.statuses[0]?.recovered, false);
      });

      test('shows in the connection gauges with protocol="4"', async () => {
        const { daemon } = await daemonWithSite();
        await connect(io, daemon, { transport });
        await connect(io, daemon, { transport });
        const series = (protocol) => `push_connections{namespace="/chat",transport="${transport}",protocol="${protocol}"}`;
        const text = await scrape(daemon);
        assert.equal(seriesValue(text, series(4)), 2);
        assert.equal(seriesValue(text, series(5)), 0);
        // The difference protocol 4 forces is said in the log, not left silent.
        assert.match(daemon.log, /INFO.*protocol 4.*also connected to "\/"/);
        assert.match(daemon.log, /INFO.*protocol 4 clients have no auth object.*`offset` in the connect query string/);
      });

      test('is refused from a foreign origin', async () => {
        const { daemon } = await daemonWithSite();
        await assert.rejects(connect(io, daemon, { transport, origin: EVIL }));
        assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'news', data: 1 }), 0);
      });

      test('recovers what it missed when it reconnects with the offset in its query', async () => {
        const { daemon } = await daemonWithSite();
        const first = await connect(io, daemon, { transport });
        await sendOk(daemon.socketPath, { namespace: '/chat', event: 'news', data: 'seen' });
        await waitUntil(() => first.seen.events.length === 1, { what: 'the first message' });
        const last = first.seen.events[0].offset;
        first.socket.disconnect();
        await waitUntil(async () => (await sendOk(daemon.socketPath, { namespace: '/chat', event: 'live', data: 'probe' })) === 0, {
          what: 'the daemon to see the page go',
        });
        await sendOk(daemon.socketPath, { namespace: '/chat', event: 'missed', data: 1 });
        await sendOk(daemon.socketPath, { namespace: '/chat', event: 'missed', data: 2 });

        const again = await connect(io, daemon, { transport, query: { offset: last } });
        await waitUntil(() => received(again.seen, 'missed').length === 2, { what: 'the missed messages' });
        assert.equal(again.seen.statuses.length, 1);
        const [status] = again.seen.statuses;
        assert.equal(status.recovered, true);
        assert.equal(status.offset, last);
        // The probes were missed too: everything after `last`, in order.
        assert.ok(status.replayed >= 3, `replayed ${status.replayed}`);
        assert.deepEqual(received(again.seen, 'missed'), [1, 2]);
      });
    });
  }
}

for (const [version, io] of Object.entries(CLIENTS)) {
  describe(`socket.io-client ${version}, polling upgraded to WebSocket`, () => {
    test('receives its private messages after the upgrade', async () => {
      const { daemon } = await daemonWithSite();
      const alice = await connect(io, daemon, { transport: 'upgrade', cookie: cookieFor('sid-42') });
      assert.equal(alice.socket.io.engine.transport.name, 'websocket');
      assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'private', users: ['42'], data: 'after' }), 1);
      await waitUntil(() => received(alice.seen, 'private').length === 1, { what: 'the private message' });
    });
  });

  describe(`socket.io-client ${version} under --max-connections`, () => {
    test('holds two places (its namespace and the implicit "/") and is refused past the limit', async () => {
      const site = await resources.backend();
      const daemon = await resources.daemon({ args: ['--auth-url', site.url, '--namespace', '/chat', '--max-connections', '3'] });
      await connect(io, daemon, { transport: 'websocket' });
      // The second page gets "/" (the third place) and is refused "/chat".
      const refused = await connect(io, daemon, { transport: 'websocket' }).then(() => 'connected', (error) => error);
      assert.match(JSON.stringify(refused), /too_many_connections/);
      assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'news', data: 1 }), 1);
    });
  });
}

for (const [version, io] of Object.entries(CLIENTS)) {
  describe(`socket.io-client ${version} reconnecting by itself`, () => {
    test('sends its last offset from reconnect_attempt, as docs/old-clients.md shows, and recovers', async () => {
      const { daemon } = await daemonWithSite();
      // The recipe of docs/old-clients.md, word for word but for the options.
      const socket = io(`${daemon.url}/chat`, {
        ...options('websocket'),
        reconnection: true,
        reconnectionDelay: 1000,
        reconnectionDelayMax: 1000,
        randomizationFactor: 0,
      });
      sockets.push(socket);
      const seen = record(socket);
      let last;
      socket.on('news', (message, meta) => {
        if (meta) last = meta.offset;
      });
      socket.on('reconnect_attempt', () => {
        if (last) socket.io.opts.query = { offset: last };
      });
      await withGuard(new Promise((resolve) => socket.once('connect', resolve)), 'the page to connect');
      await sendOk(daemon.socketPath, { namespace: '/chat', event: 'news', data: 'seen' });
      await waitUntil(() => last !== undefined, { what: 'the first message' });

      // The network drops: the transport closes under the page.
      socket.io.engine.close();
      await waitUntil(async () => (await sendOk(daemon.socketPath, { namespace: '/chat', event: 'missed', data: 'probe' })) === 0, {
        what: 'the daemon to see the page go',
      });
      await sendOk(daemon.socketPath, { namespace: '/chat', event: 'missed', data: 'last' });
      await waitUntil(() => seen.statuses.length === 2, { what: 'the page to reconnect' });
      const status = seen.statuses[1];
      assert.equal(status.recovered, true, JSON.stringify(status));
      await waitUntil(() => received(seen, 'missed').at(-1) === 'last', { what: 'the missed messages' });
      assert.equal(received(seen, 'missed').length, status.replayed);
    });
  });
}

describe('old and new clients side by side', () => {
  test('a 2.x page and a 4.x page on one namespace receive the same broadcast', async () => {
    const { daemon } = await daemonWithSite();
    const old = await connect(ioV2, daemon, { transport: 'websocket' });
    const { io: ioV4 } = await import('socket.io-client');
    const modern = ioV4(`${daemon.url}/chat`, { ...options('websocket'), transports: ['websocket'] });
    sockets.push(modern);
    const seenModern = record(modern);
    await withGuard(new Promise((resolve, reject) => {
      modern.once('connect', resolve);
      modern.once('connect_error', reject);
    }), 'the 4.x client to connect');
    assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'news', data: 'both' }), 2);
    await waitUntil(() => received(old.seen, 'news').length === 1 && received(seenModern, 'news').length === 1, {
      what: 'both pages to receive the broadcast',
    });
    const text = await scrape(daemon);
    assert.equal(seriesValue(text, 'push_connections{namespace="/chat",transport="websocket",protocol="4"}'), 1);
    assert.equal(seriesValue(text, 'push_connections{namespace="/chat",transport="websocket",protocol="5"}'), 1);
  });
});

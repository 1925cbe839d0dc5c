// The limits on what browsers can make the daemon hold, each with its
// refusal, its metric and its log line: connections in total and per
// address, new sessions per address and minute, and rooms per connection.
// (The packet size and event flood limits are in hostile-socketio.test.mjs,
// the send queue bound in slow-consumer.test.mjs.)
//
// A second client address is played from 127.0.0.2, which Linux routes to
// the loopback interface without configuration. Loopback is a trusted proxy
// by default, and a trusted proxy that names no browser is not limited per
// address; the tests of per-address limits on the TCP peer therefore trust
// a documentation address instead (UNRELATED_PROXY), which makes loopback
// peers browsers. The tests behind a trusted proxy name browsers with
// X-Forwarded-For or Forwarded from loopback.

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { engineIoPath, httpRequest, pollingHandshake, RawWebSocket } from './support/engineio.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { publisherFor, sendOk, stats } from './support/publish.mjs';
import { waitUntil } from './support/wait.mjs';

const OTHER_ADDRESS = '127.0.0.2';
/** A trusted proxy that is not loopback (TEST-NET-1, RFC 5737). */
const UNRELATED_PROXY = '192.0.2.1';

const refusals = async (daemon, reason) => seriesValue(await scrape(daemon), `push_connections_refused_total{reason="${reason}"}`);

/** Everything a test started, stopped in reverse order afterwards. */
const cleanups = [];
const clients = new ClientPool();
afterEach(async () => {
  clients.closeAll();
  while (cleanups.length > 0) await cleanups.pop()();
});
const daemonWith = async (args, options = {}) => {
  const daemon = await startDaemon({ logLevel: 'info', ...options, args });
  cleanups.push(() => daemon.cleanup());
  return daemon;
};
const rawOpen = async (daemon, options) => {
  const raw = await RawWebSocket.open(daemon, options);
  cleanups.push(() => raw.terminate());
  return raw;
};

describe('--max-connections', () => {
  test('refuses connections over the total with "too_many_connections", counted and logged', async () => {
    const daemon = await daemonWith(['--max-connections', '3']);
    const first = await clients.connect(daemon, { transport: 'websocket' });
    await clients.connect(daemon, { transport: 'polling' });
    await rawOpen(daemon, { localAddress: OTHER_ADDRESS });
    for (const transport of ['websocket', 'polling']) {
      const refused = await clients.refused(daemon, { transport });
      assert.equal(refused.message, 'too_many_connections');
    }
    await assert.rejects(rawOpen(daemon), /refused: 44\{"message":"too_many_connections"\}/);
    assert.equal(await refusals(daemon, 'too_many_connections'), 3);
    assert.match(daemon.log, /INFO.*refused a connection.*too_many_connections/);
    assert.equal((await stats(daemon.socketPath)).connections, 3);

    // Refusals gave their places back; a closed connection gives its own.
    first.close();
    await waitUntil(async () => (await stats(daemon.socketPath)).connections === 2, { what: 'the first client to be gone' });
    const again = await clients.connect(daemon);
    assert.equal(await sendOk(daemon.socketPath, { event: 'hello', data: 1 }), 3);
    await again.waitFor('hello');
  });
});

describe('--max-connections-per-ip', () => {
  test('refuses a third connection from one address, not from another', async () => {
    const daemon = await daemonWith(['--max-connections-per-ip', '2', '--trusted-proxy', UNRELATED_PROXY]);
    await clients.connect(daemon, { transport: 'websocket' });
    await clients.connect(daemon, { transport: 'polling' });
    const refused = await clients.refused(daemon, { transport: 'websocket' });
    assert.equal(refused.message, 'too_many_connections_from_address');
    await assert.rejects(rawOpen(daemon), /too_many_connections_from_address/);
    // Another address has its own allowance.
    await rawOpen(daemon, { localAddress: OTHER_ADDRESS });
    await rawOpen(daemon, { localAddress: OTHER_ADDRESS });
    await assert.rejects(rawOpen(daemon, { localAddress: OTHER_ADDRESS }), /too_many_connections_from_address/);
    assert.equal(await refusals(daemon, 'too_many_connections_from_address'), 3);
    assert.match(daemon.log, /INFO.*refused a connection.*too_many_connections_from_address.*127\.0\.0\.1/);
    assert.equal((await stats(daemon.socketPath)).connections, 4);
  });
});

describe('--handshakes-per-ip-per-minute', () => {
  test('answers 429 to new sessions over the rate; other addresses and running sessions are unaffected', async () => {
    const daemon = await daemonWith(['--handshakes-per-ip-per-minute', '5', '--trusted-proxy', UNRELATED_PROXY]);
    const sessions = [];
    for (let i = 0; i < 4; i++) {
      const session = await pollingHandshake(daemon);
      assert.equal(session.status, 200, `handshake ${i + 1}`);
      sessions.push(session);
    }
    const client = await clients.connect(daemon, { transport: 'polling' }); // the fifth
    // The sixth, on either transport, from this address:
    assert.equal((await pollingHandshake(daemon)).status, 429);
    await assert.rejects(rawOpen(daemon), (error) => error.status === 429);
    const refused = await clients.refused(daemon, { transport: 'polling' });
    assert.match(refused.message, /xhr poll error|429/i);

    // Requests of sessions already open carry their sid and pass.
    const poll = await httpRequest(daemon, { method: 'POST', path: engineIoPath('polling', `&sid=${sessions[0].sid}`), body: '40' });
    assert.equal(poll.status, 200);
    assert.equal(await sendOk(daemon.socketPath, { event: 'still', data: 1 }), 2);
    await client.waitFor('still');

    // Another address has its own budget.
    assert.equal((await pollingHandshake(daemon, { localAddress: OTHER_ADDRESS })).status, 200);
    await rawOpen(daemon, { localAddress: OTHER_ADDRESS });

    assert.equal(await refusals(daemon, 'handshake_rate_exceeded'), 3);
    assert.match(daemon.log, /INFO.*refused a connection.*handshake_rate_exceeded.*127\.0\.0\.1/);
  });
});

describe('--max-rooms-per-connection', () => {
  test('keeps the first N rooms the auth answer names, ignores the rest, counts and warns', async () => {
    const rooms = ['r1', 'r2', 'r3', 'r4', 'r5'];
    const backend = await startAuthBackend({ users: { 'sid-many': { user_id: 'many', rooms } } });
    cleanups.push(() => backend.close());
    const daemon = await daemonWith(['--auth-url', backend.url, '--max-rooms-per-connection', '2']);
    const client = await clients.connect(daemon, { cookie: cookieFor('sid-many') });
    const reached = [];
    for (const room of rooms) reached.push(await sendOk(daemon.socketPath, { event: 'room', rooms: [room], data: room }));
    assert.deepEqual(reached, [1, 1, 0, 0, 0]);
    // The user's private stream is not one of the rooms and is never cut.
    assert.equal(await sendOk(daemon.socketPath, { event: 'dm', users: ['many'], data: 'private' }), 1);
    await clients.flush(publisherFor(daemon), [client]);
    assert.deepEqual(client.received('room'), ['r1', 'r2']);
    assert.deepEqual(client.received('dm'), ['private']);
    assert.equal(seriesValue(await scrape(daemon), 'push_rooms_truncated_total'), 1);
    assert.match(daemon.log, /WARN.*more rooms than max_rooms_per_connection.*rooms=5.*kept=2/);
  });
});

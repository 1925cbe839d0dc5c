// Isolation under load: 1,000 users and 10,000 random private messages.
// Every message must reach exactly the connections of the user it was sent
// to: all of their tabs, on any transport, and no one else's (0
// misdeliveries).
//
// To make a leak likely if one were possible, the auth backend puts every
// user into rooms whose names look like other users' private rooms
// ("user:17", "17", "user:"), and 100 of the users also have a connection
// in a second namespace that must receive nothing published to "/".

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { Kind, publisherFor, RawConnection, request, stats } from './support/publish.mjs';
import { waitUntil } from './support/wait.mjs';

const USERS = 1000;
const MESSAGES = 10_000;
/** Users 1..SECOND_TAB have a second tab, over long-polling for the first POLLING of them. */
const SECOND_TAB = 200;
const POLLING = 50;
/** Users 1..OTHER_NAMESPACE also have a connection in /other. */
const OTHER_NAMESPACE = 100;
const CONNECT_BATCH = 50;
const PUBLISH_BATCH = 500;

const userId = (n) => String(n);
const sidOf = (n) => `sid-user-${n}`;

/** Every user, with rooms named like other users' private rooms. */
function siteUsers() {
  const users = {};
  for (let n = 1; n <= USERS; n++) {
    const other = (n % USERS) + 1;
    users[sidOf(n)] = { user_id: userId(n), rooms: [`user:${other}`, userId(other), 'user:', `room:user:${other}`] };
  }
  return users;
}

/** A deterministic generator (xorshift32). */
function random(seed) {
  let state = seed;
  return () => {
    state ^= state << 13; state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5; state >>>= 0;
    return state;
  };
}

describe('isolation under load', () => {
  let backend;
  let daemon;
  const clients = new ClientPool();
  /** user number -> its connections in "/" */
  const tabs = new Map();
  const others = [];

  before(async () => {
    backend = await startAuthBackend({ users: siteUsers() });
    daemon = await startDaemon({ logLevel: 'warn', args: ['--auth-url', backend.url, '--auth-required', '--namespace', '/other'] });
    const plan = [];
    for (let n = 1; n <= USERS; n++) plan.push({ n, transport: 'websocket', namespace: '/' });
    for (let n = 1; n <= SECOND_TAB; n++) plan.push({ n, transport: n <= POLLING ? 'polling' : 'websocket', namespace: '/' });
    for (let n = 1; n <= OTHER_NAMESPACE; n++) plan.push({ n, transport: 'websocket', namespace: '/other' });
    for (let i = 0; i < plan.length; i += CONNECT_BATCH) {
      await Promise.all(plan.slice(i, i + CONNECT_BATCH).map(async ({ n, transport, namespace }) => {
        const client = await clients.connect(daemon, { transport, namespace, cookie: cookieFor(sidOf(n)), name: `user ${n} ${transport} ${namespace}` });
        if (namespace === '/') {
          if (!tabs.has(n)) tabs.set(n, []);
          tabs.get(n).push(client);
        } else {
          others.push(client);
        }
      }));
    }
  });
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
    await backend?.close();
  });

  test(`${MESSAGES} random private messages to ${USERS} users: each reaches exactly its user's connections`, async (t) => {
    const census = await stats(daemon.socketPath);
    assert.equal(census.namespaces['/'].connections, USERS + SECOND_TAB);
    assert.equal(census.namespaces['/'].users_online, USERS);
    assert.equal(census.namespaces['/other'].connections, OTHER_NAMESPACE);

    const next = random(0x1501a7e);
    const sentTo = []; // message id -> user number
    const publisher = await RawConnection.open(daemon.socketPath);
    await publisher.handshake();
    const started = Date.now();
    try {
      for (let start = 0; start < MESSAGES; start += PUBLISH_BATCH) {
        const frames = [];
        for (let id = start; id < Math.min(start + PUBLISH_BATCH, MESSAGES); id++) {
          const n = (next() % USERS) + 1;
          sentTo[id] = n;
          frames.push(request.publish(id + 1, { event: 'private', users: [userId(n)], data: { id, to: userId(n) } }));
        }
        publisher.write(Buffer.concat(frames));
        for (let i = 0; i < frames.length; i++) {
          const reply = await publisher.reply();
          const id = reply.id - 1;
          assert.equal(reply.kind, Kind.PUBLISHED, JSON.stringify(reply));
          assert.equal(reply.recipients, tabs.get(sentTo[id]).length, `message ${id} to user ${sentTo[id]}`);
        }
      }
    } finally {
      publisher.destroy();
    }

    // Wait until every expected delivery has arrived, then look for extras.
    let expected = 0;
    for (const n of sentTo) expected += tabs.get(n).length;
    const received = () => [...tabs.values()].flat().reduce((sum, client) => sum + client.received('private').length, 0);
    await waitUntil(() => received() >= expected, { timeoutMs: 60_000, what: () => `${expected} deliveries (have ${received()})` });
    t.diagnostic(`${MESSAGES} messages, ${expected} deliveries to ${USERS + SECOND_TAB} connections in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // A marker broadcast after everything: once each connection has it, all
    // it was ever going to receive has arrived.
    await clients.flush(publisherFor(daemon), [...tabs.values()].flat());

    let misdeliveries = 0;
    const wanted = new Map(); // user number -> sorted ids
    sentTo.forEach((n, id) => {
      if (!wanted.has(n)) wanted.set(n, []);
      wanted.get(n).push(id);
    });
    for (const [n, connections] of tabs) {
      const ids = wanted.get(n) ?? [];
      for (const client of connections) {
        const got = client.received('private');
        misdeliveries += got.filter((data) => data.to !== userId(n)).length;
        assert.deepEqual(got.map((data) => data.id), ids, `${client.name} received exactly its user's messages, in order`);
      }
    }
    for (const client of others) {
      misdeliveries += client.received('private').length;
    }
    t.diagnostic(`misdeliveries: ${misdeliveries}`);
    assert.equal(misdeliveries, 0);
  });

  test('rooms named like private rooms reach the room\'s members, never the user', async () => {
    // User n is in the site rooms "user:<n+1>" and "<n+1>".
    const memberOf = (k) => (k === 1 ? USERS : k - 1);
    const next = random(0x600d);
    const publisher = await RawConnection.open(daemon.socketPath);
    await publisher.handshake();
    const sent = [];
    try {
      for (let id = 0; id < 200; id++) {
        const k = (next() % USERS) + 1;
        const room = id % 2 === 0 ? `user:${k}` : userId(k);
        sent.push(k);
        const reply = await publisher.call(request.publish(id + 1, { event: 'roomcast', rooms: [room], data: { id, k } }));
        assert.equal(reply.kind, Kind.PUBLISHED);
        assert.equal(reply.recipients, tabs.get(memberOf(k)).length, `room ${room}`);
      }
    } finally {
      publisher.destroy();
    }
    await clients.flush(publisherFor(daemon), [...tabs.values()].flat());
    for (const [n, connections] of tabs) {
      const ids = sent.flatMap((k, id) => (memberOf(k) === n ? [id] : []));
      for (const client of connections) {
        assert.deepEqual(client.received('roomcast').map((data) => data.id), ids, client.name);
      }
    }
    for (const client of others) assert.deepEqual(client.received('roomcast'), []);
  });
});

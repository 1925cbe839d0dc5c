// Who receives a publish: everyone, users, rooms, except; over WebSocket
// only, long-polling only, and the client's default polling-then-upgrade.
//
// Identities come from the auth backend (support/auth-backend.mjs): the
// cookie sid-42 is user 42 in group:7, sid-7 is user 7 in group:8, sid-9 is
// user 9 in group:7; sid-nobody gets 401 and no cookie at all is a guest.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool, TRANSPORTS } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { publisherFor, sendOk } from './support/publish.mjs';

for (const transport of TRANSPORTS) {
  describe(`delivery over ${transport}`, () => {
    let backend;
    let daemon;
    let publish;
    const clients = new ClientPool();
    const connect = (options = {}) => clients.connect(daemon, { transport, ...options });
    const as = (sid, name) => connect({ cookie: cookieFor(sid), name: `${name} (${transport})` });
    const guest = (name) => connect({ name: `${name} (${transport})` });
    /** Asserts, after a marker, that none of `others` got `event`. */
    const assertNothingFor = async (others, event) => {
      await clients.flush(publish, others);
      for (const client of others) {
        assert.deepEqual(client.received(event), [], `${client.name} must not receive "${event}"`);
      }
    };

    before(async () => {
      backend = await startAuthBackend();
      daemon = await startDaemon({ args: ['--auth-url', backend.url, '--namespace', '/chat'] });
      publish = publisherFor(daemon);
    });
    afterEach(() => clients.closeAllAndSettle(daemon));
    after(async () => {
      clients.closeAll();
      await daemon?.cleanup();
      await backend?.close();
    });

    test('a broadcast reaches every connection, and the reply counts them', async () => {
      const all = [
        await guest('guest A'),
        await guest('guest B'),
        await as('sid-42', 'user 42'),
        await as('sid-7', 'user 7'),
        await as('sid-nobody', 'logged-out visitor'),
      ];
      const count = await sendOk(daemon.socketPath, { event: 'news', data: { headline: 'hello', n: 1 } });
      assert.equal(count, all.length);
      for (const client of all) {
        assert.deepEqual(await client.waitFor('news'), { headline: 'hello', n: 1 });
      }
      // Exactly one copy each.
      await clients.flush(publish, all);
      for (const client of all) assert.equal(client.received('news').length, 1, client.name);
    });

    test('the payload arrives as the JSON that was published', async () => {
      const client = await guest('guest');
      const payloads = [
        { text: 'héllo ✓ "quoted" \\ back', list: [1, 2.5, -3, true, false, null], nested: { a: { b: [] } } },
        'just a string',
        12345,
        [{ id: 1 }, { id: 2 }],
      ];
      for (const [i, data] of payloads.entries()) {
        assert.equal(await sendOk(daemon.socketPath, { event: `payload-${i}`, data }), 1);
        assert.deepEqual(await client.waitFor(`payload-${i}`), data);
      }
    });

    test("a message to user 42 reaches both of 42's tabs and nobody else", async () => {
      const tab1 = await as('sid-42', 'user 42 tab 1');
      const tab2 = await as('sid-42', 'user 42 tab 2');
      const user7 = await as('sid-7', 'user 7');
      const anonymous = await guest('anonymous');
      const loggedOut = await as('sid-nobody', 'logged-out visitor');

      const count = await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: { secret: 'for 42' } });
      assert.equal(count, 2, 'the reply counts exactly the two tabs of user 42');
      assert.deepEqual(await tab1.waitFor('private'), { secret: 'for 42' });
      assert.deepEqual(await tab2.waitFor('private'), { secret: 'for 42' });
      await assertNothingFor([user7, anonymous, loggedOut], 'private');
      assert.equal(tab1.received('private').length, 1);
      assert.equal(tab2.received('private').length, 1);
    });

    test('a user id the backend sent as an integer is addressed by its text', async () => {
      const user7 = await as('sid-7', 'user 7');
      const user42 = await as('sid-42', 'user 42');
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['7'], data: { to: 7 } }), 1);
      assert.deepEqual(await user7.waitFor('private'), { to: 7 });
      await assertNothingFor([user42], 'private');
    });

    test('several users are reached together, each connection once', async () => {
      const tab1 = await as('sid-42', 'user 42 tab 1');
      const tab2 = await as('sid-42', 'user 42 tab 2');
      const user7 = await as('sid-7', 'user 7');
      const user9 = await as('sid-9', 'user 9');
      const anonymous = await guest('anonymous');
      const count = await sendOk(daemon.socketPath, { event: 'private', users: ['42', '7', '42'], data: 1 });
      assert.equal(count, 3);
      for (const client of [tab1, tab2, user7]) assert.equal(await client.waitFor('private'), 1);
      await assertNothingFor([user9, anonymous], 'private');
      for (const client of [tab1, tab2, user7]) assert.equal(client.received('private').length, 1, client.name);
    });

    test('a message to a user with no connection reaches nobody', async () => {
      const user42 = await as('sid-42', 'user 42');
      const anonymous = await guest('anonymous');
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['1000'], data: {} }), 0);
      await assertNothingFor([user42, anonymous], 'private');
    });

    test('a room from the auth answer reaches its members only', async () => {
      const user42 = await as('sid-42', 'user 42 (group:7)');
      const user9 = await as('sid-9', 'user 9 (group:7)');
      const user7 = await as('sid-7', 'user 7 (group:8)');
      const anonymous = await guest('anonymous');

      assert.equal(await sendOk(daemon.socketPath, { event: 'group', rooms: ['group:7'], data: { g: 7 } }), 2);
      assert.deepEqual(await user42.waitFor('group'), { g: 7 });
      assert.deepEqual(await user9.waitFor('group'), { g: 7 });
      await assertNothingFor([user7, anonymous], 'group');

      assert.equal(await sendOk(daemon.socketPath, { event: 'both', rooms: ['group:7', 'group:8'], data: 2 }), 3);
      for (const client of [user42, user9, user7]) assert.equal(await client.waitFor('both'), 2);
      await assertNothingFor([anonymous], 'both');

      assert.equal(await sendOk(daemon.socketPath, { event: 'empty-room', rooms: ['group:unknown'], data: 0 }), 0);
      await assertNothingFor([user42, user9, user7, anonymous], 'empty-room');
    });

    test("a room name cannot address a user's private stream", async () => {
      const user42 = await as('sid-42', 'user 42');
      const user7 = await as('sid-7', 'user 7');
      for (const room of ['42', 'user:42', 'room:user:42', 'user:7']) {
        assert.equal(await sendOk(daemon.socketPath, { event: 'sneaky', rooms: [room], data: room }), 0, `room ${room}`);
      }
      // Nor can a user id address a room.
      assert.equal(await sendOk(daemon.socketPath, { event: 'sneaky', users: ['group:7', 'room:group:7'], data: 'u' }), 0);
      await assertNothingFor([user42, user7], 'sneaky');
    });

    test('users and rooms together reach their union, each connection once', async () => {
      const tab1 = await as('sid-42', 'user 42 tab 1 (group:7)');
      const tab2 = await as('sid-42', 'user 42 tab 2 (group:7)');
      const user9 = await as('sid-9', 'user 9 (group:7)');
      const user7 = await as('sid-7', 'user 7');
      const anonymous = await guest('anonymous');
      // 42 is both named and in group:7: still one copy per tab.
      const count = await sendOk(daemon.socketPath, { event: 'union', users: ['42'], rooms: ['group:7'], data: 'u' });
      assert.equal(count, 3);
      for (const client of [tab1, tab2, user9]) assert.equal(await client.waitFor('union'), 'u');
      await assertNothingFor([user7, anonymous], 'union');
      for (const client of [tab1, tab2, user9]) assert.equal(client.received('union').length, 1, client.name);
    });

    test('except leaves users out of a broadcast, a room or a user list', async () => {
      const tab1 = await as('sid-42', 'user 42 tab 1 (group:7)');
      const tab2 = await as('sid-42', 'user 42 tab 2 (group:7)');
      const user9 = await as('sid-9', 'user 9 (group:7)');
      const user7 = await as('sid-7', 'user 7 (group:8)');
      const anonymous = await guest('anonymous');

      // Broadcast except 42: everyone else, guests included.
      assert.equal(await sendOk(daemon.socketPath, { event: 'all-but-42', except: ['42'], data: 'a' }), 3);
      for (const client of [user9, user7, anonymous]) assert.equal(await client.waitFor('all-but-42'), 'a');
      await assertNothingFor([tab1, tab2], 'all-but-42');

      // A room except one of its members.
      assert.equal(await sendOk(daemon.socketPath, { event: 'room-but-42', rooms: ['group:7'], except: ['42'], data: 'r' }), 1);
      assert.equal(await user9.waitFor('room-but-42'), 'r');
      await assertNothingFor([tab1, tab2, user7, anonymous], 'room-but-42');

      // Users except one of them, and except several.
      assert.equal(await sendOk(daemon.socketPath, { event: 'users-but-42', users: ['42', '7'], except: ['42'], data: 'u' }), 1);
      assert.equal(await user7.waitFor('users-but-42'), 'u');
      await assertNothingFor([tab1, tab2, user9, anonymous], 'users-but-42');

      assert.equal(await sendOk(daemon.socketPath, { event: 'all-but-two', except: ['42', '9'], data: 't' }), 2);
      for (const client of [user7, anonymous]) assert.equal(await client.waitFor('all-but-two'), 't');
      await assertNothingFor([tab1, tab2, user9], 'all-but-two');

      // Excluding someone who is not connected changes nothing.
      assert.equal(await sendOk(daemon.socketPath, { event: 'all-but-absent', except: ['1000'], data: 'x' }), 5);
    });

    test('a namespace only receives its own publishes', async () => {
      const root = await as('sid-42', 'user 42 on /');
      const chat = await connect({ namespace: '/chat', cookie: cookieFor('sid-42'), name: `user 42 on /chat (${transport})` });
      const chatGuest = await connect({ namespace: '/chat', name: `guest on /chat (${transport})` });

      assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'chat', data: 'c' }), 2);
      assert.equal(await chat.waitFor('chat'), 'c');
      assert.equal(await chatGuest.waitFor('chat'), 'c');
      await assertNothingFor([root], 'chat');

      assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'chat-private', users: ['42'], data: 'p' }), 1);
      assert.equal(await chat.waitFor('chat-private'), 'p');
      await clients.flush(publish, [chat, chatGuest], '/chat');
      assert.deepEqual(chatGuest.received('chat-private'), []);
      await assertNothingFor([root], 'chat-private');

      assert.equal(await sendOk(daemon.socketPath, { event: 'root', data: 'r' }), 1);
      assert.equal(await root.waitFor('root'), 'r');
      await clients.flush(publish, [chat, chatGuest], '/chat');
      assert.deepEqual(chat.received('root'), []);
      assert.deepEqual(chatGuest.received('root'), []);
    });
  });
}

describe('delivery to one user over different transports at once', () => {
  let backend;
  let daemon;
  const clients = new ClientPool();
  before(async () => {
    backend = await startAuthBackend();
    daemon = await startDaemon({ args: ['--auth-url', backend.url] });
  });
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
    await backend?.close();
  });

  test("each of 42's tabs gets the message, whatever its transport", async () => {
    const tabs = [];
    for (const transport of TRANSPORTS) {
      tabs.push(await clients.connect(daemon, { transport, cookie: cookieFor('sid-42'), name: `user 42 over ${transport}` }));
    }
    const others = [];
    for (const transport of TRANSPORTS) {
      others.push(await clients.connect(daemon, { transport, cookie: cookieFor('sid-7'), name: `user 7 over ${transport}` }));
      others.push(await clients.connect(daemon, { transport, name: `guest over ${transport}` }));
    }
    assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: { n: 1 } }), 3);
    for (const tab of tabs) assert.deepEqual(await tab.waitFor('private'), { n: 1 });
    await clients.flush(publisherFor(daemon), others);
    for (const client of others) assert.deepEqual(client.received('private'), [], client.name);
    assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 'all' }), 9);
    for (const client of [...tabs, ...others]) assert.equal(await client.waitFor('news'), 'all');
  });
});

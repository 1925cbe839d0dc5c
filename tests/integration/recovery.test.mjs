// Missed-message recovery (docs/recovery.md): offsets on every event, the
// push:recovery status first after each connect, and a page reconnecting
// with its last offset getting exactly what it missed, in order, before
// anything live. Real daemon, real socket.io client.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { freePort, runBinary, startDaemon, tempDir } from './support/daemon.mjs';
import { ErrorCode, Kind, RawConnection, request, sendOk } from './support/publish.mjs';
import { sleep, waitUntil } from './support/wait.mjs';

const cleanups = [];
const later = (fn) => cleanups.push(fn);
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()();
});

async function daemonWith(args = [], options = {}) {
  const daemon = await startDaemon({ args, ...options });
  later(() => daemon.cleanup());
  return daemon;
}

async function authSite() {
  const site = await startAuthBackend();
  later(() => site.close());
  return site;
}

function pool() {
  const clients = new ClientPool();
  later(() => clients.closeAll());
  return clients;
}

/** A publisher connection that pipelines many publishes. */
async function publisher(daemon) {
  const connection = await RawConnection.open(daemon.socketPath);
  later(() => connection.destroy());
  await connection.handshake();
  let id = 100;
  return {
    /** Publishes every message in order; resolves with their replies. */
    async publish(messages) {
      const first = id + 1;
      connection.write(Buffer.concat(messages.map((message) => request.publish(++id, message))));
      const replies = [];
      for (let n = 0; n < messages.length; n++) replies.push(await connection.reply());
      for (const [n, reply] of replies.entries()) {
        assert.equal(reply.kind, Kind.PUBLISHED, `publish ${first + n}: ${JSON.stringify(reply)}`);
      }
      return replies;
    },
    async position(namespace = '/') {
      return connection.call(request.position(++id, namespace));
    },
  };
}

/** The status of the last connect. */
const statusOf = (client) => client.statuses.at(-1);

/** Waits for the client's status of its connect. */
async function status(client) {
  await waitUntil(() => client.statuses.length > 0, { what: `${client.name}'s push:recovery status` });
  return statusOf(client);
}

/** Reconnects like a page would: a new socket with the last offset seen. */
async function reconnect(clients, daemon, client, options = {}) {
  const offset = client.events.at(-1)?.offset ?? statusOf(client).offset;
  return clients.connect(daemon, { ...options, auth: { offset } });
}

describe('offsets and the status event', () => {
  test('the status comes first, then every event carries its offset as one trailing argument', async () => {
    const daemon = await daemonWith();
    const clients = pool();
    const page = await clients.connect(daemon);
    const first = await status(page);
    assert.deepEqual(Object.keys(first).sort(), ['offset', 'recovered', 'replayed']);
    assert.equal(first.recovered, false);
    assert.equal(first.replayed, 0);
    assert.equal(typeof first.offset, 'string');

    const seen = [];
    page.socket.on('news', (...args) => seen.push(args));
    await sendOk(daemon.socketPath, { event: 'news', data: { n: 1 } });
    await sendOk(daemon.socketPath, { event: 'news', data: { n: 2 } });
    await waitUntil(() => seen.length === 2, { what: 'two news events' });
    assert.equal(seen[0].length, 2, 'the message and one trailing argument');
    assert.deepEqual(seen[0][0], { n: 1 });
    assert.deepEqual(Object.keys(seen[0][1]), ['offset']);
    assert.notEqual(seen[0][1].offset, seen[1][1].offset);
    assert.notEqual(seen[0][1].offset, first.offset);
  });

  test('--recovery-window 0: no trailing argument, no status event, and POSITION says recovery_off', async () => {
    const daemon = await daemonWith(['--recovery-window', '0']);
    const clients = pool();
    const page = await clients.connect(daemon);
    const seen = [];
    page.socket.on('news', (...args) => seen.push(args));
    await sendOk(daemon.socketPath, { event: 'news', data: 1 });
    await waitUntil(() => seen.length === 1, { what: 'the news event' });
    assert.deepEqual(seen, [[1]]);
    assert.deepEqual(page.statuses, []);
    const reply = await (await publisher(daemon)).position('/');
    assert.equal(reply.kind, Kind.ERROR);
    assert.equal(reply.code, ErrorCode.RECOVERY_OFF);
    assert.match(reply.message, /recovery_window/);
  });
});

describe('reconnecting with the last offset', () => {
  test('5 private, 5 room and 5 broadcast messages missed are replayed in publish order, then live ones; another user gets none of them', async () => {
    const site = await authSite();
    const daemon = await daemonWith(['--auth-url', site.url]);
    const clients = pool();
    const alice = await clients.connect(daemon, { cookie: cookieFor('sid-42') }); // user 42, group:7
    const bob = await clients.connect(daemon, { cookie: cookieFor('sid-7') }); // user 7, group:8
    await status(alice);
    await status(bob);
    alice.close();
    bob.close();

    const sent = [];
    for (let i = 0; i < 5; i++) {
      sent.push({ event: 'private', users: ['42'], data: { i, kind: 'private' } });
      sent.push({ event: 'room', rooms: ['group:7'], data: { i, kind: 'room' } });
      sent.push({ event: 'everyone', data: { i, kind: 'broadcast' } });
      // Not for alice: bob's own, a room she is not in, and one that leaves her out.
      sent.push({ event: 'private', users: ['7'], data: { i, kind: 'bob' } });
      sent.push({ event: 'room', rooms: ['group:8'], data: { i, kind: 'other room' } });
      sent.push({ event: 'everyone', except: ['42'], data: { i, kind: 'except alice' } });
    }
    const publish = await publisher(daemon);
    await publish.publish(sent);

    const [alice2, bob2] = await Promise.all([
      reconnect(clients, daemon, alice, { cookie: cookieFor('sid-42') }),
      reconnect(clients, daemon, bob, { cookie: cookieFor('sid-7') }),
    ]);
    const forAlice = sent.filter((m) => ['private', 'room', 'broadcast'].includes(m.data.kind));
    assert.equal(forAlice.length, 15);
    const aliceStatus = await status(alice2);
    assert.equal(aliceStatus.recovered, true);
    assert.equal(aliceStatus.replayed, 15);
    await waitUntil(() => alice2.events.length >= 15, { what: 'alice\'s 15 missed messages' });
    await publish.publish([{ event: 'live', data: 'after' }]);
    await alice2.waitFor('live');
    assert.deepEqual(alice2.events.map((e) => e.data), [...forAlice.map((m) => m.data), 'after']);
    assert.deepEqual(alice2.events.map((e) => e.event), [...forAlice.map((m) => m.event), 'live']);

    const bobStatus = await status(bob2);
    assert.equal(bobStatus.recovered, true);
    await bob2.waitFor('live');
    const bobKinds = bob2.events.map((e) => e.data?.kind ?? e.data);
    assert.ok(!bobKinds.includes('private'), `bob got alice's private messages: ${bobKinds}`);
    assert.ok(!bobKinds.includes('room'), `bob got group:7's messages: ${bobKinds}`);
    assert.equal(bobKinds.filter((kind) => kind === 'bob').length, 5);
  });

  test('a message published while 10,000 are being replayed arrives exactly once, after them', async () => {
    const daemon = await daemonWith();
    const clients = pool();
    const page = await clients.connect(daemon);
    await status(page);
    page.close();
    const publish = await publisher(daemon);
    const backlog = Array.from({ length: 10_000 }, (_, n) => ({ event: 'backlog', data: n }));
    await publish.publish(backlog);

    const back = await reconnect(clients, daemon, page);
    // Publish while the replay is in flight: some of these are caught up
    // from the history, the rest arrive live; each must come once.
    await waitUntil(() => back.events.length > 0, { what: 'the replay to start' });
    const during = Array.from({ length: 20 }, (_, n) => ({ event: 'during', data: n }));
    for (const message of during) await publish.publish([message]);
    await waitUntil(() => back.received('during').length >= 20, { timeoutMs: 60_000, what: 'every message published during the replay' });
    await publish.publish([{ event: 'marker', data: 'end' }]);
    await back.waitFor('marker');

    assert.equal((await status(back)).replayed, 10_000);
    assert.deepEqual(back.received('backlog'), backlog.map((m) => m.data));
    assert.deepEqual(back.received('during'), during.map((m) => m.data));
    const order = back.events.map((e) => e.event);
    assert.equal(order.lastIndexOf('backlog') < order.indexOf('during'), true, 'replayed before live');
    const offsets = back.events.map((e) => e.offset);
    assert.equal(new Set(offsets).size, offsets.length, 'every offset once');
  });

  test('an offset older than the window, or garbage, is not recovered and nothing is replayed', async () => {
    const daemon = await daemonWith(['--recovery-window', '1s']);
    const clients = pool();
    const page = await clients.connect(daemon);
    await status(page);
    page.close();
    await sendOk(daemon.socketPath, { event: 'gone', data: 1 });
    await sleep(1_500);
    await sendOk(daemon.socketPath, { event: 'trigger-expiry', data: 2 });

    const late = await reconnect(clients, daemon, page);
    const lateStatus = await status(late);
    assert.equal(lateStatus.recovered, false);
    assert.equal(lateStatus.replayed, 0);
    for (const offset of ['garbage', '', '1-2-3', 'ffff-1']) {
      const stranger = await clients.connect(daemon, { auth: { offset } });
      assert.equal((await status(stranger)).recovered, false, `offset ${JSON.stringify(offset)}`);
    }
    await sendOk(daemon.socketPath, { event: 'marker', data: 'end' });
    await late.waitFor('marker');
    assert.deepEqual(late.events.map((e) => e.event), ['marker']);
  });

  test('the page-render bootstrap: a first connect with the offset from POSITION receives what was published after it', async () => {
    const daemon = await daemonWith();
    const publish = await publisher(daemon);
    await publish.publish([{ event: 'before', data: 0 }]);
    const position = await publish.position('/');
    assert.equal(position.kind, Kind.POSITION_REPLY);
    await publish.publish([{ event: 'after-render', data: 1 }, { event: 'after-render', data: 2 }]);

    const clients = pool();
    const page = await clients.connect(daemon, { auth: { offset: position.offset } });
    assert.deepEqual(await status(page), { recovered: true, replayed: 2, offset: position.offset });
    await waitUntil(() => page.events.length === 2, { what: 'the two messages after the render' });
    assert.deepEqual(page.received('after-render'), [1, 2]);
    assert.deepEqual(page.received('before'), []);
    assert.equal((await publish.position('/nope')).code, ErrorCode.UNKNOWN_NAMESPACE);
  });
});

describe('recovery and identity', () => {
  test('under --auth-required, a page the site could not identify at its reconnect is replayed its private messages once identified, and nothing before', async () => {
    let failing = false;
    const site = await startAuthBackend({
      respond(req, res) {
        if (!failing) return false;
        res.writeHead(503);
        res.end();
        return true;
      },
    });
    later(() => site.close());
    const daemon = await daemonWith(['--auth-url', site.url, '--auth-required', '--auth-cache-ttl', '0']);
    const clients = pool();
    const page = await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    await status(page);
    page.close();
    await (await publisher(daemon)).publish([
      { event: 'private', users: ['42'], data: 'for alice' },
      { event: 'everyone', data: 'for all' },
    ]);

    failing = true;
    const back = await reconnect(clients, daemon, page, { cookie: cookieFor('sid-42') });
    await sleep(300);
    assert.deepEqual(back.statuses, [], 'nothing, not even the status, before it is identified');
    assert.deepEqual(back.events, []);
    failing = false;
    const resumed = await status(back);
    assert.equal(resumed.recovered, true);
    await waitUntil(() => back.events.length === 2, { what: 'the replay after identification' });
    assert.deepEqual(back.events.map((e) => e.data), ['for alice', 'for all']);
  });
});

describe('across a restart of the daemon', () => {
  async function missAcrossRestart(args) {
    const dir = tempDir();
    later(() => fs.rmSync(dir, { recursive: true, force: true }));
    const stateArgs = args(dir);
    const first = await startDaemon({ args: stateArgs });
    const clients = pool();
    const page = await clients.connect(first);
    await status(page);
    page.close();
    await (await publisher(first)).publish([1, 2, 3].map((n) => ({ event: 'missed', data: n })));
    await first.stop();
    await first.cleanup();

    const second = await daemonWith(stateArgs);
    const back = await reconnect(clients, second, page);
    return { back, status: await status(back) };
  }

  test('without --state-dir the offset is from another epoch: recovered false', async () => {
    const { back, status: resumed } = await missAcrossRestart(() => []);
    assert.equal(resumed.recovered, false);
    assert.equal(resumed.replayed, 0);
    await sleep(200);
    assert.deepEqual(back.received('missed'), []);
  });

  test('with --state-dir a planned restart recovers everything', async () => {
    const { back, status: resumed } = await missAcrossRestart((dir) => ['--state-dir', path.join(dir, 'state')]);
    assert.equal(resumed.recovered, true);
    assert.equal(resumed.replayed, 3);
    await waitUntil(() => back.events.length === 3, { what: 'the three missed messages' });
    assert.deepEqual(back.received('missed'), [1, 2, 3]);
  });
});

describe('one daemon per state directory', () => {
  test('a second daemon on the same --state-dir refuses to start, naming the directory and the holder\'s pid; the first goes on', async () => {
    const dir = tempDir();
    later(() => fs.rmSync(dir, { recursive: true, force: true }));
    const state = path.join(dir, 'state');
    const first = await daemonWith(['--state-dir', state]);
    const clients = pool();
    const page = await clients.connect(first);
    await status(page);

    const port = await freePort();
    const second = await runBinary(['serve', '--listen', `127.0.0.1:${port}`, '--socket', path.join(dir, 'second.sock'), '--state-dir', state]);
    assert.notEqual(second.code, 0, 'the second daemon exits');
    assert.ok(second.stderr.includes(`the state directory ${state} is in use by another push-core (pid ${first.child.pid})`), second.stderr);
    assert.match(second.stderr, /give this one a state_dir of its own/);

    // The first still serves and journals: its history survives its own restart.
    assert.equal(await sendOk(first.socketPath, { event: 'kept', data: 1 }), 1);
    await waitUntil(() => page.received('kept').length === 1, { what: 'the message' });
    await first.stop();
    const third = await daemonWith(['--state-dir', state]);
    const back = await reconnect(clients, third, page);
    assert.equal((await status(back)).recovered, true);
  });

  test('a daemon killed with SIGKILL leaves nothing that stops the next one', async () => {
    const dir = tempDir();
    later(() => fs.rmSync(dir, { recursive: true, force: true }));
    const state = path.join(dir, 'state');
    const first = await daemonWith(['--state-dir', state]);
    await first.stop({ signal: 'SIGKILL' });
    assert.equal(fs.readFileSync(path.join(state, 'lock'), 'utf8').trim(), String(first.child.pid), 'the lock file names its last holder');
    const second = await daemonWith(['--state-dir', state]);
    assert.ok(second.running);
  });
});


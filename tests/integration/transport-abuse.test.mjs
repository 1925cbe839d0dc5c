// What the engine.io transport does with clients that misbehave at the
// connection level, beyond malformed packets (hostile-socketio.test.mjs)
// and slow readers among many (slow-consumer.test.mjs):
//
// - a half-open WebSocket: the client's machine is gone, nothing answers,
//   not even TCP (played by a relay that stops forwarding and never
//   closes);
// - a client that never reads a byte of what it is sent;
// - floods of polling requests: overlapping polls and posts on one
//   session, and sessions opened and left.
//
// Each is closed or refused on its own, and a well-behaved browser
// connected throughout keeps receiving every publish. The daemon runs with
// a one-second ping interval and timeout, so dead connections are found
// within the test's time, and the well-behaved browser (the socket.io
// client in this busy test process) still answers every ping in time.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import WebSocket from 'ws';

import { ClientPool } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { engineIoPath, httpRequest, pollingHandshake } from './support/engineio.mjs';
import { sendOk, stats } from './support/publish.mjs';
import { sleep, waitUntil, withGuard } from './support/wait.mjs';

const PING_INTERVAL_MS = 1000;
const PING_TIMEOUT_MS = 1000;
/** Long enough for any dead connection to be found, with room. */
const DEAD_FOUND_MS = (PING_INTERVAL_MS + PING_TIMEOUT_MS) * 3;

/**
 * A TCP relay in front of the daemon. `freeze()` stops it forwarding in
 * both directions without closing anything: to the daemon, the client is
 * half-open, present as a socket and silent as a dead machine.
 */
async function startRelay(port) {
  const pairs = [];
  let frozen = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    pairs.push({ client, upstream });
    const forward = (from, to) => from.on('data', (data) => { if (!frozen) to.write(data); });
    forward(client, upstream);
    forward(upstream, client);
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    freeze() {
      frozen = true;
      // Stop reading too, so the daemon's writes fill the socket buffers.
      for (const { upstream } of pairs) upstream.pause();
    },
    close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      server.close();
    },
  };
}

/** A WebSocket that joins "/" and answers pings, opened through `port`. */
async function joinedWebSocket(port) {
  const socket = new WebSocket(`ws://127.0.0.1:${port}${engineIoPath('websocket')}`, { perMessageDeflate: false });
  const messages = [];
  const closed = new Promise((resolve) => socket.once('close', resolve));
  socket.on('error', () => {});
  socket.on('message', (data) => {
    const text = data.toString('utf8');
    messages.push(text);
    if (text === '2') socket.send('3');
  });
  await withGuard(new Promise((resolve) => socket.once('open', resolve)), 'a WebSocket to open');
  socket.send('40');
  await waitUntil(() => messages.some((m) => m.startsWith('40{')), { what: 'the join to be confirmed' });
  return { socket, messages, closed };
}

describe('connection-level abuse of the transport', () => {
  let daemon;
  let bystander;
  let markers = 0;
  const clients = new ClientPool();

  const connections = async () => (await stats(daemon.socketPath)).connections;
  const assertBystanderServed = async () => {
    const marker = ++markers;
    await sendOk(daemon.socketPath, { event: 'marker', data: { marker } });
    await bystander.waitFor('marker', (data) => data.marker === marker);
  };

  before(async () => {
    daemon = await startDaemon({
      args: ['--ping-interval', `${PING_INTERVAL_MS}ms`, '--ping-timeout', `${PING_TIMEOUT_MS}ms`, '--connect-timeout', '2s'],
    });
    bystander = await clients.connect(daemon, { name: 'bystander' });
  });
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
  });

  test('a half-open WebSocket is closed once it misses the heartbeat', async () => {
    const relay = await startRelay(daemon.port);
    try {
      const halfOpen = await joinedWebSocket(relay.port);
      assert.equal(await connections(), 2);
      relay.freeze();
      // Publishing to it meanwhile fills its socket; nothing waits for it.
      for (let i = 0; i < 50; i++) await sendOk(daemon.socketPath, { event: 'filler', data: { i, text: 'x'.repeat(2000) } });
      await waitUntil(async () => (await connections()) === 1, {
        timeoutMs: DEAD_FOUND_MS,
        what: 'the daemon to close the half-open connection',
      });
      await assertBystanderServed();
      assert.ok(halfOpen.messages.length > 0);
    } finally {
      relay.close();
    }
  });

  test('a client that never reads is closed once it misses the heartbeat; its queue is bounded meanwhile', async () => {
    const silent = await joinedWebSocket(daemon.port);
    // Stop reading, answering nothing: its kernel buffers fill, then its
    // queue, then its pings go unanswered.
    silent.socket.pause();
    silent.socket._socket.pause();
    const published = [];
    for (let i = 0; i < 200; i++) published.push(sendOk(daemon.socketPath, { event: 'filler', data: { i, text: 'x'.repeat(4000) } }));
    await Promise.all(published);
    await waitUntil(async () => (await connections()) === 1, { timeoutMs: DEAD_FOUND_MS, what: 'the silent client to be gone' });
    await assertBystanderServed();
  });

  test('overlapping polls and posts end their session and no other', async () => {
    for (let round = 0; round < 20; round++) {
      const session = await pollingHandshake(daemon);
      assert.equal(session.status, 200);
      const path = engineIoPath('polling', `&sid=${session.sid}`);
      const answers = await Promise.all([
        ...Array.from({ length: 5 }, () => httpRequest(daemon, { path })),
        ...Array.from({ length: 5 }, () => httpRequest(daemon, { method: 'POST', path, body: '40' })),
      ]);
      for (const answer of answers) assert.ok([200, 400].includes(answer.status), `status ${answer.status}`);
      assert.ok(answers.some((answer) => answer.status === 400), 'some overlapping request was refused');
      // The session is gone, or ends at its next request.
      const after = await httpRequest(daemon, { path });
      assert.ok([200, 400].includes(after.status));
    }
    await assertBystanderServed();
  });

  test('sessions opened and left are closed, and a flood of them leaves nothing behind', async () => {
    const before = await connections();
    const sids = [];
    for (let i = 0; i < 300; i++) {
      const session = await pollingHandshake(daemon);
      assert.equal(session.status, 200);
      sids.push(session.sid);
    }
    // Nobody polls them: they join no namespace within connect_timeout, so
    // the server closes them, keeping the close packet a few seconds for a
    // poll that would fetch it; then each is unknown.
    await sleep(DEAD_FOUND_MS);
    for (const sid of sids.slice(0, 20)) {
      const path = engineIoPath('polling', `&sid=${sid}`);
      let answer = await httpRequest(daemon, { path });
      if (answer.status === 200) {
        // What was queued (a ping, perhaps), then the close packet.
        assert.equal(answer.body.split('\u001e').at(-1), '1', 'a session kept only to say it is closed');
        answer = await httpRequest(daemon, { path });
      }
      assert.equal(answer.status, 400);
      assert.deepEqual(JSON.parse(answer.body), { code: 1, message: 'Session ID unknown' });
    }
    await waitUntil(async () => {
      const answers = await Promise.all(sids.map((sid) => httpRequest(daemon, { path: engineIoPath('polling', `&sid=${sid}`) })));
      return answers.every((answer) => answer.status === 400);
    }, { timeoutMs: DEAD_FOUND_MS * 2, what: 'every session left to be gone' });
    assert.equal(await connections(), before);
    await assertBystanderServed();
  });
});

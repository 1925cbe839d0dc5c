// What the helper's tests share: the real daemon and publishing, from the
// end-to-end suite's support (tests/integration/support), plus a network
// that a test can cut, a POSITION request as PHP's position() sends it, and
// a page (the helper over the npm socket.io client) that records what its
// handlers and callbacks saw.

import assert from 'node:assert/strict';
import net from 'node:net';

import { io } from 'socket.io-client';

import { connect, STATUS_EVENT } from '../index.mjs';
import { body, frame, Kind, RawConnection, request, sendOk } from '../../../tests/integration/support/publish.mjs';
import { waitUntil, withGuard } from '../../../tests/integration/support/wait.mjs';

export { startDaemon, tempDir } from '../../../tests/integration/support/daemon.mjs';
export { sendOk } from '../../../tests/integration/support/publish.mjs';
export { sleep, waitUntil } from '../../../tests/integration/support/wait.mjs';

export const NAMESPACE = '/news';

/** The publish protocol's POSITION request and reply (docs/protocol.md). */
const POSITION = 0x06;
const POSITION_REPLY = 0x86;

/**
 * A TCP relay between pages and the daemon that a test can cut like a
 * network: `cut()` drops every connection and refuses new ones until
 * `restore()`. `target` may change while it is cut (a restarted daemon).
 * `stall()` stops passing on what the daemon sends, as a page too slow to
 * read would, until `unstall()`.
 */
export class Network {
  static async start(targetPort) {
    const network = new Network(targetPort);
    await new Promise((resolve, reject) => {
      network.server.once('error', reject);
      network.server.listen(0, '127.0.0.1', resolve);
    });
    network.url = `http://127.0.0.1:${network.server.address().port}`;
    return network;
  }

  constructor(targetPort) {
    this.targetPort = targetPort;
    this.isCut = false;
    this.sockets = new Set();
    // Each daemon-side socket and the page it goes to.
    this.links = new Map();
    this.server = net.createServer((page) => {
      if (this.isCut) {
        page.destroy();
        return;
      }
      const daemon = net.createConnection(this.targetPort, '127.0.0.1');
      for (const [socket, other] of [[page, daemon], [daemon, page]]) {
        this.sockets.add(socket);
        socket.on('error', () => other.destroy());
        socket.on('close', () => { this.sockets.delete(socket); other.destroy(); });
      }
      page.pipe(daemon);
      daemon.pipe(page);
      this.links.set(daemon, page);
      daemon.on('close', () => this.links.delete(daemon));
    });
  }

  stall() {
    for (const [daemon, page] of this.links) {
      daemon.unpipe(page);
      daemon.pause();
    }
  }

  unstall() {
    for (const [daemon, page] of this.links) daemon.pipe(page);
  }

  cut() {
    this.isCut = true;
    for (const socket of this.sockets) socket.destroy();
  }

  restore() {
    this.isCut = false;
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** The namespace's current offset, asked over the publish socket as PHP's PushClient::position() does. */
export async function position(socketPath, namespace = NAMESPACE) {
  const socket = net.createConnection(socketPath);
  try {
    const name = Buffer.from(namespace, 'utf8');
    const length = Buffer.alloc(2);
    length.writeUInt16BE(name.length);
    socket.write(Buffer.concat([request.hello(1), frame(body(POSITION, 2, length, name))]));
    let buffer = Buffer.alloc(0);
    const replies = [];
    await withGuard(new Promise((resolve, reject) => {
      socket.on('error', reject);
      socket.on('close', () => reject(new Error('the daemon closed the publish connection')));
      socket.on('data', (data) => {
        buffer = Buffer.concat([buffer, data]);
        while (buffer.length >= 4 && buffer.length >= 4 + buffer.readUInt32BE(0)) {
          replies.push(buffer.subarray(4, 4 + buffer.readUInt32BE(0)));
          buffer = buffer.subarray(4 + buffer.readUInt32BE(0));
        }
        if (replies.length === 2) resolve();
      });
    }), 'the HELLO and POSITION replies');
    assert.equal(replies[0].readUInt8(0), Kind.HELLO_REPLY);
    const reply = replies[1];
    assert.equal(reply.readUInt8(0), POSITION_REPLY, `POSITION was answered with kind 0x${reply.readUInt8(0).toString(16)}`);
    const offsetLength = reply.readUInt16BE(5);
    return reply.subarray(7, 7 + offsetLength).toString('utf8');
  } finally {
    socket.destroy();
  }
}

/**
 * A page: the helper connected to `url` + NAMESPACE, recording what its
 * handlers get for `events`, and its onRecovered/onReset calls, in order.
 */
export function openPage(url, { events = ['news'], offset, ...options } = {}) {
  const seen = [];      // { event, args } as the handlers got them
  const log = [];       // 'message:<text>', 'recovered:<n>', 'reset' in the order they happened
  const recovered = [];
  const resets = [];
  const misses = [];
  // Statuses push-core sent: one per connect, handled by the helper first
  // (its onAny listener runs before on() listeners).
  let statuses = 0;
  const push = connect(io, `${url}${NAMESPACE}`, {
    transports: ['websocket'],
    // Retry soon after a cut: the test restores the network, not the clock.
    reconnectionDelay: 50,
    reconnectionDelayMax: 200,
    offset,
    onRecovered: (info) => { recovered.push(info); log.push(`recovered:${info.replayed}`); },
    onReset: (info) => { resets.push(info); log.push('reset'); },
    onMissed: (info) => { misses.push(info); log.push(`missed:${info.missed}`); },
    ...options,
  });
  push.socket.on(STATUS_EVENT, () => { statuses += 1; });
  for (const event of events) {
    push.on(event, (...args) => {
      seen.push({ event, args });
      log.push(`message:${args[0]?.text}`);
    });
  }
  return {
    push,
    seen,
    log,
    recovered,
    resets,
    misses,
    get statuses() { return statuses; },
    texts: () => seen.map(({ args }) => args[0]?.text),
    /** Resolves once the page has had its `n`th status from push-core (its `n`th connect). */
    connected: (n = 1) => waitUntil(() => push.socket.connected && statuses >= n, { what: `status number ${n} from push-core` }),
    close: () => push.close(),
  };
}

/**
 * Publishes `count` messages { text: '<n>', filler } of about `size` bytes
 * as `event`, pipelined on one publish connection.
 */
export async function publishMany(daemon, count, { size = 2000, event = 'news' } = {}) {
  const publisher = await RawConnection.open(daemon.socketPath);
  try {
    await publisher.handshake();
    const filler = 'x'.repeat(size);
    const batch = 200;
    for (let n = 0; n < count; n += batch) {
      const end = Math.min(n + batch, count);
      const frames = [];
      for (let i = n; i < end; i++) {
        frames.push(request.publish(i + 1, { namespace: NAMESPACE, event, data: { text: String(i), filler } }));
      }
      publisher.write(Buffer.concat(frames));
      for (let i = n; i < end; i++) assert.equal((await publisher.reply()).kind, Kind.PUBLISHED);
    }
  } finally {
    publisher.destroy();
  }
}

/** Publishes { text } as `event` to the namespace and returns how many connections push-core handed it to. */
export function publish(daemon, text, event = 'news') {
  return sendOk(daemon.socketPath, { namespace: NAMESPACE, event, data: { text } });
}

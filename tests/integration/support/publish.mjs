// Publishing: through the real `push-core send`/`stats`/`online` commands,
// and, for the tests of the wire protocol itself, with raw bytes on the
// Unix socket (see docs/protocol.md and push-client/src/protocol).

import assert from 'node:assert/strict';
import net from 'node:net';

import { runBinary } from './daemon.mjs';
import { GUARD_MS, waitUntil, withGuard } from './wait.mjs';

// ---- the command-line tools ------------------------------------------------

/**
 * Runs `push-core send` and returns { code, stdout, stderr }.
 * `data` is JSON-encoded unless `raw` gives the DATA argument verbatim;
 * `stdin` sends DATA as `-` with that text on standard input.
 */
export function send(socketPath, { namespace = '/', event, users = [], rooms = [], except = [], data, raw, stdin }) {
  const args = ['send', '--socket', socketPath, '--namespace', namespace, '--event', event];
  for (const user of users) args.push('--user', String(user));
  for (const room of rooms) args.push('--room', room);
  for (const user of except) args.push('--except-user', String(user));
  if (stdin !== undefined) args.push('-');
  else args.push(raw ?? JSON.stringify(data));
  return runBinary(args, { stdin });
}

/** `push-core send` that must succeed; resolves with the count it printed. */
export async function sendOk(socketPath, message) {
  const result = await send(socketPath, message);
  assert.equal(result.code, 0, `push-core send failed: ${result.stderr}`);
  assert.match(result.stdout, /^\d+\n$/, `push-core send printed ${JSON.stringify(result.stdout)}`);
  return Number(result.stdout);
}

/**
 * Waits until a publish to `target` on `socketPath` counts `expected`
 * connections, and says the count is complete. In a cluster a node counts
 * the other nodes' connections as of their last presence update
 * (docs/scaling.md, "Counts in a cluster"), a few milliseconds after a
 * page connects there: a test that asserts an exact count right after
 * pages connect to other nodes waits for this first. Each try publishes
 * the event `count-probe`, which no test listens to.
 */
export async function waitForCount(socketPath, target, expected) {
  let last = 'nothing yet';
  await waitUntil(async () => {
    const result = await send(socketPath, { ...target, event: 'count-probe', data: null });
    last = JSON.stringify([result.code, result.stdout, result.stderr]);
    return result.code === 0 && result.stdout === `${expected}\n` && !/partial/.test(result.stderr);
  }, { what: () => `a count of ${expected} for ${JSON.stringify(target)} (last: ${last})` });
}

/** A publish function bound to a daemon, for ClientPool.flush. */
export const publisherFor = (daemon) => (message) => sendOk(daemon.socketPath, message);

/** `push-core stats`, parsed. */
export async function stats(socketPath) {
  const result = await runBinary(['stats', '--socket', socketPath]);
  assert.equal(result.code, 0, `push-core stats failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

/** `push-core online`, parsed. */
export async function online(socketPath, namespace, user) {
  const result = await runBinary(['online', '--socket', socketPath, '--namespace', namespace, String(user)]);
  assert.equal(result.code, 0, `push-core online failed: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

/**
 * Publishes through a daemon's HTTP API with bearer `token`; resolves with
 * its answer, { recipients, partial }.
 */
export async function publishOverHttp(daemon, token, body) {
  const response = await fetch(`${daemon.url}/api/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

// ---- the wire protocol -----------------------------------------------------

export const Kind = {
  HELLO: 0x01,
  PING: 0x02,
  PUBLISH: 0x03,
  ONLINE: 0x04,
  STATS: 0x05,
  POSITION: 0x06,
  HELLO_REPLY: 0x81,
  PONG: 0x82,
  PUBLISHED: 0x83,
  ONLINE_REPLY: 0x84,
  STATS_REPLY: 0x85,
  POSITION_REPLY: 0x86,
  ERROR: 0xff,
};

export const ErrorCode = {
  MALFORMED_FRAME: 1,
  FRAME_TOO_LARGE: 2,
  UNSUPPORTED_VERSION: 3,
  HANDSHAKE_REQUIRED: 4,
  UNKNOWN_OPERATION: 5,
  UNKNOWN_NAMESPACE: 6,
  INVALID_PAYLOAD: 7,
  INVALID_REQUEST: 8,
  FORBIDDEN: 9,
  SHUTTING_DOWN: 10,
  INTERNAL: 11,
  TOO_MANY_PUBLISHERS: 12,
  RECOVERY_OFF: 13,
};

const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const str = (s) => { const bytes = Buffer.from(s, 'utf8'); return Buffer.concat([u16(bytes.length), bytes]); };
const list = (items) => Buffer.concat([u16(items.length), ...items.map(str)]);
const blob = (bytes) => Buffer.concat([u32(bytes.length), bytes]);

/** One frame: u32 BE body length, then the body. */
export const frame = (body) => Buffer.concat([u32(body.length), body]);

/** A body: u8 kind, u32 BE request id, then the fields. */
export const body = (kind, id, ...fields) => Buffer.concat([Buffer.from([kind]), u32(id), ...fields]);

/** Whole request frames. */
export const request = {
  hello: (id, version = 1, client = 'integration-test') => frame(body(Kind.HELLO, id, u16(version), str(client))),
  ping: (id) => frame(body(Kind.PING, id)),
  publish: (id, { namespace = '/', event, users = [], rooms = [], except = [], data }) =>
    frame(body(Kind.PUBLISH, id, str(namespace), str(event), list(users), list(rooms), list(except),
      blob(Buffer.isBuffer(data) ? data : Buffer.from(JSON.stringify(data))))),
  online: (id, namespace, user) => frame(body(Kind.ONLINE, id, str(namespace), str(user))),
  stats: (id) => frame(body(Kind.STATS, id)),
  position: (id, namespace) => frame(body(Kind.POSITION, id, str(namespace))),
};

/** Bit 0 of the flags byte after a count (protocol version 2): partial. */
export const COUNT_FLAG_PARTIAL = 0x01;

/**
 * Decodes one reply body as protocol `version` encodes it: from version 2
 * on, a count is followed by a flags byte (reply.flags, reply.partial).
 */
function decodeReply(buf, version) {
  const kind = buf.readUInt8(0);
  const id = buf.readUInt32BE(1);
  const reply = { kind, id };
  let at = 5;
  const readStr = () => {
    const len = buf.readUInt16BE(at);
    const text = buf.subarray(at + 2, at + 2 + len).toString('utf8');
    at += 2 + len;
    return text;
  };
  switch (kind) {
    case Kind.HELLO_REPLY:
      reply.version = buf.readUInt16BE(at);
      reply.maxFrameSize = buf.readUInt32BE(at + 2);
      at += 6;
      reply.server = readStr();
      break;
    case Kind.PONG:
      break;
    case Kind.PUBLISHED:
    case Kind.ONLINE_REPLY:
      reply[kind === Kind.PUBLISHED ? 'recipients' : 'connections'] = buf.readUInt32BE(at);
      at += 4;
      if (version >= 2) {
        reply.flags = buf.readUInt8(at);
        reply.partial = (reply.flags & COUNT_FLAG_PARTIAL) !== 0;
        at += 1;
      }
      break;
    case Kind.POSITION_REPLY:
      reply.offset = readStr();
      break;
    case Kind.STATS_REPLY: {
      const len = buf.readUInt32BE(at);
      reply.stats = JSON.parse(buf.subarray(at + 4, at + 4 + len).toString('utf8'));
      at += 4 + len;
      break;
    }
    case Kind.ERROR:
      reply.code = buf.readUInt16BE(at);
      at += 2;
      reply.message = readStr();
      break;
    default:
      throw new Error(`unexpected reply kind 0x${kind.toString(16)}`);
  }
  assert.equal(at, buf.length, `reply 0x${kind.toString(16)} has ${buf.length - at} trailing bytes`);
  return reply;
}

/** A raw connection to the publish socket that reads reply frames. */
export class RawConnection {
  static async open(socketPath) {
    const socket = net.createConnection(socketPath);
    await withGuard(new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    }), `a connection to ${socketPath}`);
    return new RawConnection(socket);
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.replies = [];
    // Replies are decoded in the version the daemon's HELLO reply agreed on.
    this.version = 1;
    this.ended = false;
    this.error = null;
    this.notify = () => {};
    socket.on('data', (data) => {
      this.buffer = Buffer.concat([this.buffer, data]);
      while (this.buffer.length >= 4) {
        const len = this.buffer.readUInt32BE(0);
        if (this.buffer.length < 4 + len) break;
        const reply = decodeReply(this.buffer.subarray(4, 4 + len), this.version);
        if (reply.kind === Kind.HELLO_REPLY) this.version = reply.version;
        this.replies.push(reply);
        this.buffer = this.buffer.subarray(4 + len);
      }
      this.notify();
    });
    socket.on('end', () => { this.ended = true; this.notify(); });
    socket.on('close', () => { this.ended = true; this.notify(); });
    // A reset by the daemon counts as the connection being closed.
    socket.on('error', (error) => { this.error = error; this.ended = true; this.notify(); });
  }

  write(bytes) {
    this.socket.write(bytes);
  }

  /** Resolves with the next reply frame; rejects if the daemon closes first. */
  async reply() {
    await withGuard(new Promise((resolve) => {
      const check = () => {
        if (this.replies.length > 0 || this.ended) resolve();
      };
      this.notify = check;
      check();
    }), 'a reply frame from the daemon');
    if (this.replies.length === 0) {
      throw new Error(`the daemon closed the connection without a reply${this.error ? ` (${this.error.message})` : ''}`);
    }
    return this.replies.shift();
  }

  /** Sends a request frame and resolves with its reply. */
  async call(bytes) {
    this.write(bytes);
    return this.reply();
  }

  /** Sends HELLO and checks the answer. */
  async handshake() {
    const reply = await this.call(request.hello(1));
    assert.equal(reply.kind, Kind.HELLO_REPLY, `HELLO was answered with ${JSON.stringify(reply)}`);
    return reply;
  }

  /** Resolves once the daemon has closed the connection (EOF or reset). */
  async closedByDaemon() {
    await withGuard(new Promise((resolve) => {
      this.notify = () => { if (this.ended) resolve(); };
      this.notify();
    }), 'the daemon to close the connection', GUARD_MS);
  }

  /** Half-closes our side: the daemon reads EOF. */
  end() {
    this.socket.end();
  }

  destroy() {
    this.socket.destroy();
  }
}

// The publish protocol on the Unix socket, spoken with raw bytes: the
// handshake, pipelining, and what malformed, truncated and oversized frames
// get. After each abuse the daemon must keep serving: a publish on a fresh
// connection (with the real `push-core send`) still reaches the browser.
//
// Frame: u32 BE body length + body; body: u8 kind + u32 BE request id +
// fields (see support/publish.mjs and push-client/src/protocol).

import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';

import { ClientPool } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { body, ErrorCode, frame, Kind, publisherFor, RawConnection, request, send, sendOk, stats } from './support/publish.mjs';

const MAX_FRAME_SIZE = 4096;

describe('the publish socket', () => {
  let daemon;
  let browser;
  let publishes = 0;
  const clients = new ClientPool();
  const connections = [];
  const open = async () => {
    const connection = await RawConnection.open(daemon.socketPath);
    connections.push(connection);
    return connection;
  };
  const handshaken = async () => {
    const connection = await open();
    await connection.handshake();
    return connection;
  };
  /** A publish on a fresh connection works and reaches the browser. */
  const assertStillServing = async () => {
    const n = ++publishes;
    assert.equal(await sendOk(daemon.socketPath, { event: 'after', data: { n } }), 1);
    assert.deepEqual(await browser.waitFor('after', (data) => data.n === n), { n });
  };
  const assertError = (reply, id, code) => {
    assert.equal(reply.kind, Kind.ERROR, `expected an ERROR reply, got ${JSON.stringify(reply)}`);
    assert.equal(reply.id, id, `request id of ${JSON.stringify(reply)}`);
    assert.equal(reply.code, code, `error code of ${JSON.stringify(reply)}`);
    assert.ok(reply.message.length > 0, 'the error has a message');
  };

  before(async () => {
    daemon = await startDaemon({ args: ['--max-frame-size', String(MAX_FRAME_SIZE)] });
  });
  beforeEach(async () => {
    browser = await clients.connect(daemon, { transport: 'websocket', name: 'browser' });
  });
  afterEach(async () => {
    for (const connection of connections.splice(0)) connection.destroy();
    await clients.closeAllAndSettle(daemon);
  });
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
  });

  test('HELLO is answered with the protocol version and the max frame size', async () => {
    const connection = await open();
    const hello = await connection.call(request.hello(77));
    assert.equal(hello.kind, Kind.HELLO_REPLY);
    assert.equal(hello.id, 77);
    assert.equal(hello.version, 1);
    assert.equal(hello.maxFrameSize, MAX_FRAME_SIZE);
    assert.match(hello.server, /^push-core\//);
  });

  test('pipelined requests are answered in order with their request ids', async () => {
    const connection = await open();
    connection.write(Buffer.concat([
      request.hello(1),
      request.ping(0xfffffffe),
      request.publish(3, { event: 'piped', data: { p: 1 } }),
      request.online(4, '/', '42'),
      request.publish(5, { event: 'piped', data: { p: 2 } }),
      request.stats(6),
    ]));
    const replies = [];
    for (let i = 0; i < 6; i++) replies.push(await connection.reply());
    assert.deepEqual(replies.map((r) => [r.id, r.kind]), [
      [1, Kind.HELLO_REPLY],
      [0xfffffffe, Kind.PONG],
      [3, Kind.PUBLISHED],
      [4, Kind.ONLINE_REPLY],
      [5, Kind.PUBLISHED],
      [6, Kind.STATS_REPLY],
    ]);
    assert.equal(replies[2].recipients, 1);
    assert.equal(replies[3].connections, 0);
    assert.equal(replies[5].stats.connections, 1);
    assert.deepEqual(await browser.waitFor('piped', (d) => d.p === 2), { p: 2 });
    assert.deepEqual(browser.received('piped'), [{ p: 1 }, { p: 2 }]);
  });

  test('each connection is answered in the version its HELLO asked for: counts carry flags from version 2 on', async () => {
    const answers = {};
    for (const version of [1, 2]) {
      const connection = await open();
      connection.write(Buffer.concat([
        request.hello(1, version),
        request.publish(2, { event: `v${version}`, data: version }),
        request.online(3, '/', '42'),
      ]));
      const replies = [];
      for (let i = 0; i < 3; i++) replies.push(await connection.reply());
      answers[version] = replies.map(({ kind, version: v, recipients, connections, flags, partial }) =>
        ({ kind, version: v, recipients, connections, flags, partial }));
    }
    const strip = (replies) => replies.map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)));
    // Version 1: the count alone (the decoder refuses trailing bytes).
    assert.deepEqual(strip(answers[1]), [
      { kind: Kind.HELLO_REPLY, version: 1 },
      { kind: Kind.PUBLISHED, recipients: 1 },
      { kind: Kind.ONLINE_REPLY, connections: 0 },
    ]);
    // Version 2: the count, then its flags byte; one daemon is never partial.
    assert.deepEqual(strip(answers[2]), [
      { kind: Kind.HELLO_REPLY, version: 2 },
      { kind: Kind.PUBLISHED, recipients: 1, flags: 0, partial: false },
      { kind: Kind.ONLINE_REPLY, connections: 0, flags: 0, partial: false },
    ]);
    assert.deepEqual(await browser.waitFor('v2', (d) => d === 2), 2);
  });

  test('a request before HELLO gets handshake_required and the connection is closed', async () => {
    const connection = await open();
    connection.write(request.publish(9, { event: 'sneaky', data: 1 }));
    assertError(await connection.reply(), 9, ErrorCode.HANDSHAKE_REQUIRED);
    await connection.closedByDaemon();
    await clients.flush(publisherFor(daemon), [browser]);
    assert.deepEqual(browser.received('sneaky'), [], 'a publish before HELLO must not be delivered');
    await assertStillServing();
  });

  test('an unsupported protocol version is refused and the connection is closed', async () => {
    const connection = await open();
    assertError(await connection.call(request.hello(1, 3)), 1, ErrorCode.UNSUPPORTED_VERSION);
    await connection.closedByDaemon();
    await assertStillServing();
  });

  test('bad requests after the handshake get errors and the connection goes on', async () => {
    const connection = await handshaken();
    const cases = [
      [request.hello(10), ErrorCode.INVALID_REQUEST, 'a second HELLO'],
      [request.publish(11, { namespace: '/nowhere', event: 'e', data: 1 }), ErrorCode.UNKNOWN_NAMESPACE, 'an unknown namespace'],
      [request.publish(12, { event: 'e', data: Buffer.from('{"unclosed": ') }), ErrorCode.INVALID_PAYLOAD, 'a payload that is not JSON'],
      [request.publish(13, { event: 'e', data: Buffer.from([0xff, 0xfe, 0x22]) }), ErrorCode.INVALID_PAYLOAD, 'a payload that is not UTF-8'],
      [request.publish(14, { event: 'e', data: Buffer.from('1 2') }), ErrorCode.INVALID_PAYLOAD, 'two JSON values'],
      [request.publish(15, { event: 'connect', data: 1 }), ErrorCode.INVALID_REQUEST, 'a reserved event name'],
      [request.publish(16, { event: '', data: 1 }), ErrorCode.INVALID_REQUEST, 'an empty event name'],
      [request.online(17, '/nowhere', '42'), ErrorCode.UNKNOWN_NAMESPACE, 'ONLINE in an unknown namespace'],
      [frame(body(0x7e, 18)), ErrorCode.UNKNOWN_OPERATION, 'an unknown operation'],
      [frame(body(Kind.PUBLISH, 19, Buffer.from([0, 1]))), ErrorCode.MALFORMED_FRAME, 'a PUBLISH cut short'],
      [frame(body(Kind.PING, 20, Buffer.from('trailing'))), ErrorCode.MALFORMED_FRAME, 'bytes after a PING'],
      [frame(body(Kind.ONLINE, 21, Buffer.from([0, 2, 0xc3, 0x28, 0, 1, 0x34]))), ErrorCode.MALFORMED_FRAME, 'a string that is not UTF-8'],
      [frame(Buffer.from([Kind.PING, 0, 0])), ErrorCode.MALFORMED_FRAME, 'a body shorter than its header'],
      [frame(Buffer.alloc(0)), ErrorCode.MALFORMED_FRAME, 'an empty body'],
    ];
    for (const [bytes, code, what] of cases) {
      const reply = await connection.call(bytes);
      const id = bytes.length >= 9 ? bytes.readUInt32BE(5) : 0;
      assert.equal(reply.kind, Kind.ERROR, `${what}: ${JSON.stringify(reply)}`);
      assert.equal(reply.code, code, `${what}: ${JSON.stringify(reply)}`);
      assert.equal(reply.id, id, `${what}: request id of ${JSON.stringify(reply)}`);
      // The same connection still works.
      const pong = await connection.call(request.ping(1000));
      assert.deepEqual([pong.kind, pong.id], [Kind.PONG, 1000], `PING after ${what}`);
    }
    const published = await connection.call(request.publish(99, { event: 'after-errors', data: 'ok' }));
    assert.deepEqual([published.kind, published.id, published.recipients], [Kind.PUBLISHED, 99, 1]);
    assert.equal(await browser.waitFor('after-errors'), 'ok');
    await clients.flush(publisherFor(daemon), [browser]);
    assert.deepEqual(browser.received('e'), [], 'no refused publish was delivered');
    assert.deepEqual(browser.received('connect'), []);
  });

  test('garbage (an HTTP request) gets an error and a close; other publishers are unaffected', async () => {
    const bystander = await handshaken();
    const connection = await open();
    connection.write(Buffer.from('GET /socket.io/ HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    // "GET " read as a length is far over the limit.
    assertError(await connection.reply(), 0, ErrorCode.FRAME_TOO_LARGE);
    await connection.closedByDaemon();

    const pong = await bystander.call(request.ping(5));
    assert.equal(pong.kind, Kind.PONG);
    await assertStillServing();
  });

  test('random garbage frames only ever get errors, and the daemon keeps serving', async () => {
    // A fixed seed keeps the garbage the same from run to run.
    let seed = 0x2545f491;
    const random = () => {
      seed ^= seed << 13; seed >>>= 0;
      seed ^= seed >>> 17;
      seed ^= seed << 5; seed >>>= 0;
      return seed;
    };
    for (let round = 0; round < 40; round++) {
      const connection = await open();
      const handshake = round % 2 === 1;
      if (handshake) await connection.handshake();
      const frames = [];
      for (let f = 0; f < 5; f++) {
        const garbage = Buffer.alloc(random() % 64);
        for (let i = 0; i < garbage.length; i++) garbage[i] = random() & 0xff;
        frames.push(frame(garbage));
      }
      connection.write(Buffer.concat(frames));
      connection.end();
      await connection.closedByDaemon();
      for (const reply of connection.replies) {
        assert.equal(reply.kind, Kind.ERROR, `round ${round}: garbage was answered with ${JSON.stringify(reply)}`);
      }
      if (handshake) assert.equal(connection.replies.length, frames.length, `round ${round}: one error per frame`);
      else assert.ok(connection.replies.length >= 1, `round ${round}: at least one error before the close`);
    }
    await assertStillServing();
  });

  test('a frame over max_frame_size gets frame_too_large with id 0, then a close', async () => {
    const connection = await handshaken();
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(MAX_FRAME_SIZE + 1);
    // The limit applies to the length prefix alone: the body need not follow.
    connection.write(Buffer.concat([prefix, Buffer.from([Kind.PING, 0, 0, 0, 3])]));
    assertError(await connection.reply(), 0, ErrorCode.FRAME_TOO_LARGE);
    await connection.closedByDaemon();
    assert.equal(connection.replies.length, 0, 'nothing after the error');
    await assertStillServing();
  });

  test('a huge length prefix before the handshake gets frame_too_large and a close', async () => {
    const connection = await open();
    connection.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    assertError(await connection.reply(), 0, ErrorCode.FRAME_TOO_LARGE);
    await connection.closedByDaemon();
    await assertStillServing();
  });

  test('a frame of exactly max_frame_size is accepted', async () => {
    const connection = await handshaken();
    const pad = (length) => request.publish(2, { event: 'big', data: Buffer.from(JSON.stringify('x'.repeat(length))) });
    const overhead = pad(0).length - 4;
    const exact = pad(MAX_FRAME_SIZE - overhead);
    assert.equal(exact.readUInt32BE(0), MAX_FRAME_SIZE);
    const reply = await connection.call(exact);
    assert.deepEqual([reply.kind, reply.recipients], [Kind.PUBLISHED, 1]);
    assert.equal((await browser.waitFor('big')).length, MAX_FRAME_SIZE - overhead);
  });

  test('push-core send refuses a message over the limit with a clear error', async () => {
    const result = await send(daemon.socketPath, { event: 'too-big', data: 'x'.repeat(MAX_FRAME_SIZE) });
    assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^push-core: .*at most 4096\b.*max_frame_size/m);
    await assertStillServing();
  });

  test('a connection closed in the middle of a frame is dropped; nothing is delivered', async () => {
    const connection = await handshaken();
    const whole = request.publish(3, { event: 'cut', data: { half: true } });
    connection.write(whole.subarray(0, whole.length - 5));
    connection.end();
    await connection.closedByDaemon();
    assert.equal(connection.replies.length, 0);

    const cutPrefix = await handshaken();
    cutPrefix.write(Buffer.from([0, 0]));
    cutPrefix.end();
    await cutPrefix.closedByDaemon();
    assert.equal(cutPrefix.replies.length, 0);

    await assertStillServing();
    await clients.flush(publisherFor(daemon), [browser]);
    assert.deepEqual(browser.received('cut'), []);
  });

  test('a half-sent frame waits for its rest without holding up other publishers', async () => {
    const slow = await handshaken();
    const whole = request.publish(8, { event: 'slow', data: 'finally' });
    slow.write(whole.subarray(0, 7));

    await assertStillServing();
    const other = await handshaken();
    const pong = await other.call(request.ping(2));
    assert.equal(pong.kind, Kind.PONG);

    const reply = await slow.call(whole.subarray(7));
    assert.deepEqual([reply.kind, reply.id, reply.recipients], [Kind.PUBLISHED, 8, 1]);
    assert.equal(await browser.waitFor('slow'), 'finally');
  });

  test('the daemon counts publishers and protocol errors in STATS', async () => {
    const before = await stats(daemon.socketPath);
    const connection = await handshaken();
    assertError(await connection.call(frame(body(0x7e, 1))), 1, ErrorCode.UNKNOWN_OPERATION);
    const after = await stats(daemon.socketPath);
    assert.equal(after.protocol_errors, before.protocol_errors + 1);
    // This connection and the stats command's own are open or were accepted.
    assert.equal(after.publishers.accepted_total, before.publishers.accepted_total + 2);
    assert.ok(after.publishers.connected >= 2, `publishers connected: ${after.publishers.connected}`);
  });
});

describe('the publish socket with the default max frame size', () => {
  let daemon;
  before(async () => { daemon = await startDaemon(); });
  after(async () => { await daemon?.cleanup(); });

  test('announces 1 MiB and refuses a frame over it', async () => {
    const connection = await RawConnection.open(daemon.socketPath);
    try {
      const hello = await connection.handshake();
      assert.equal(hello.maxFrameSize, 1024 * 1024);
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(1024 * 1024 + 1);
      connection.write(prefix);
      assert.equal((await connection.reply()).code, ErrorCode.FRAME_TOO_LARGE);
      await connection.closedByDaemon();
    } finally {
      connection.destroy();
    }
  });
});

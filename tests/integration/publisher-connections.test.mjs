// The life of a publisher connection on the daemon's side: each is served
// by a thread of its own (push-core/src/publish/socket/connection.rs), so these
// tests check what that design must still guarantee: a cap on how many are
// served, a stop that reaches every one of them at once, deadlines for a
// half-sent frame and for replies nobody reads, and publishers that cannot
// hold each other up.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ClientPool } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { ErrorCode, Kind, RawConnection, frame, request, sendOk } from './support/publish.mjs';
import { sleep, waitUntil } from './support/wait.mjs';

/** The daemon's deadline for the rest of a started frame, and for unread replies. */
const DEADLINE_MS = 10_000;

// The tests run at the same time (three of them wait out a deadline), so
// each cleans up after itself with t.after.
async function daemonWith(t, args = []) {
  const daemon = await startDaemon({ args });
  t.after(() => daemon.cleanup());
  return daemon;
}

async function publisher(t, daemon) {
  const connection = await RawConnection.open(daemon.socketPath);
  t.after(() => connection.destroy());
  return connection;
}

describe('publisher connections', { concurrency: true }, () => {
  test('past --max-publishers a connection gets too_many_publishers with id 0 and a close; a freed slot is reused', async (t) => {
    const daemon = await daemonWith(t, ['--max-publishers', '2']);
    const first = await publisher(t, daemon);
    const second = await publisher(t, daemon);
    await first.handshake();
    await second.handshake();

    const third = await publisher(t, daemon);
    const refusal = await third.reply();
    assert.deepEqual([refusal.kind, refusal.id, refusal.code], [Kind.ERROR, 0, ErrorCode.TOO_MANY_PUBLISHERS]);
    assert.match(refusal.message, /already serves 2 publisher connections, its max_publishers setting/);
    await third.closedByDaemon();
    assert.match(daemon.log, /WARN.*refused a publisher: max_publishers connections are open/);

    // The two served ones still work.
    assert.equal((await first.call(request.ping(2))).kind, Kind.PONG);
    assert.equal((await second.call(request.ping(2))).kind, Kind.PONG);

    // A slot frees once its thread has ended, which follows the close.
    first.end();
    await first.closedByDaemon();
    await waitUntil(async () => {
      const next = await RawConnection.open(daemon.socketPath);
      try {
        const reply = await next.call(request.hello(1));
        return reply.kind === Kind.HELLO_REPLY;
      } finally {
        next.destroy();
      }
    }, { what: 'a slot to free up after a publisher left' });
    assert.ok(seriesValue(await scrape(daemon), 'push_protocol_errors_total{code="too_many_publishers"}') >= 1);
  });

  test('a stop tells every publisher, idle or half-way through a frame, shutting_down with id 0, and closes them at once', async (t) => {
    const daemon = await daemonWith(t);
    const idle = await publisher(t, daemon);
    const halfWay = await publisher(t, daemon);
    await idle.handshake();
    await halfWay.handshake();
    // The first 6 bytes of a PING frame: the rest never comes.
    halfWay.write(request.ping(2).subarray(0, 6));

    const exit = await daemon.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, daemon.logTail());
    // Had the stop waited for the half-sent frame's deadline, that
    // publisher would have been told malformed_frame instead.
    for (const connection of [idle, halfWay]) {
      const notice = await connection.reply();
      assert.deepEqual([notice.kind, notice.id, notice.code], [Kind.ERROR, 0, ErrorCode.SHUTTING_DOWN]);
      assert.match(notice.message, /shutting down; reconnect/);
      await connection.closedByDaemon();
    }
  });

  test('a frame left half-sent gets malformed_frame and a close after 10 s; other publishers are served meanwhile', async (t) => {
    const daemon = await daemonWith(t);
    const stalled = await publisher(t, daemon);
    await stalled.handshake();
    const started = Date.now();
    stalled.write(request.ping(2).subarray(0, 6));

    const other = await publisher(t, daemon);
    await other.handshake();
    assert.equal((await other.call(request.ping(2))).kind, Kind.PONG);

    await waitUntil(() => stalled.replies.length > 0 || stalled.ended, {
      timeoutMs: DEADLINE_MS + 10_000,
      what: 'the daemon to give up on the half-sent frame',
    });
    const waited = Date.now() - started;
    const notice = await stalled.reply();
    assert.deepEqual([notice.kind, notice.id, notice.code], [Kind.ERROR, 0, ErrorCode.MALFORMED_FRAME]);
    assert.match(notice.message, /started but not finished within 10s/);
    assert.ok(waited >= DEADLINE_MS - 500, `closed after ${waited} ms`);
    await stalled.closedByDaemon();
    assert.equal((await other.call(request.ping(3))).kind, Kind.PONG);
  });

  test('a publisher that keeps finishing frames is never cut off, however its writes split them', async (t) => {
    const daemon = await daemonWith(t);
    const steady = await publisher(t, daemon);
    await steady.handshake();
    // PINGs (9 bytes each): first 4 bytes, then 900 at a time, so that
    // every write ends in the middle of a frame, for longer than the 10 s a
    // started frame is given; then the last 5 bytes.
    const pings = Buffer.concat(Array.from({ length: 60_000 }, (_, i) => request.ping(i + 2)));
    const started = Date.now();
    steady.write(pings.subarray(0, 4));
    let sent = 4;
    while (Date.now() - started < DEADLINE_MS + 1_500) {
      await sleep(20);
      steady.write(pings.subarray(sent, sent + 900));
      sent += 900;
    }
    steady.write(pings.subarray(sent, sent + 5));
    sent += 5;
    await waitUntil(() => steady.replies.length >= sent / 9 || steady.ended, { what: 'every PONG' });
    assert.equal(steady.ended, false, 'the daemon closed a publisher that kept finishing its frames');
    assert.deepEqual(steady.replies.filter((reply) => reply.kind !== Kind.PONG), []);
    assert.equal(steady.replies.length, sent / 9);
  });

  test('a publisher that never reads its replies is closed after 10 s and holds up nobody else', async (t) => {
    const daemon = await daemonWith(t);
    const clients = new ClientPool();
    t.after(() => clients.closeAll());
    const browser = await clients.connect(daemon);

    const deaf = await publisher(t, daemon);
    await deaf.handshake();
    // Stop reading, then ask for far more replies than both socket buffers
    // hold: 200,000 PONGs are 1.8 MB.
    deaf.socket.pause();
    const pings = Buffer.concat(Array.from({ length: 200_000 }, (_, i) => request.ping(i + 2)));
    deaf.write(pings);
    const started = Date.now();

    // Meanwhile others publish as usual.
    assert.equal(await sendOk(daemon.socketPath, { event: 'meanwhile', data: 1 }), 1);
    await waitUntil(() => browser.received('meanwhile').length === 1, { what: 'the publish to arrive' });

    await waitUntil(() => /the publisher stopped reading its replies/.test(daemon.log), {
      timeoutMs: DEADLINE_MS + 10_000,
      what: 'the daemon to give up on the publisher that does not read',
    });
    assert.ok(Date.now() - started >= DEADLINE_MS - 500, 'given up on too early');
    deaf.socket.resume();
    await deaf.closedByDaemon();
    assert.equal(await sendOk(daemon.socketPath, { event: 'after', data: 2 }), 1);
  });

  test('a publisher thread survives bad frames and keeps answering in order', async (t) => {
    const daemon = await daemonWith(t);
    const connection = await publisher(t, daemon);
    await connection.handshake();
    // A garbage body, a PING, a publish with an unknown namespace, a PING: all in one write.
    connection.write(Buffer.concat([
      frame(Buffer.from([0x42, 0, 0, 0, 9])),
      request.ping(10),
      request.publish(11, { namespace: '/nowhere', event: 'e', data: 1 }),
      request.ping(12),
    ]));
    const replies = [await connection.reply(), await connection.reply(), await connection.reply(), await connection.reply()];
    assert.deepEqual(replies.map((r) => [r.kind, r.id, r.code]), [
      [Kind.ERROR, 9, ErrorCode.UNKNOWN_OPERATION],
      [Kind.PONG, 10, undefined],
      [Kind.ERROR, 11, ErrorCode.UNKNOWN_NAMESPACE],
      [Kind.PONG, 12, undefined],
    ]);
  });
});

// Slow consumers: browsers that stop reading while messages are published.
//
// Each connection has a queue of at most max_buffered_messages messages
// (default 1024), so the daemon's memory stays bounded however many pages
// stall. What a full queue cannot take (docs/recovery.md, "Slow pages"):
// - with recovery on (the default), the connection is taken off live
//   messages and, once it reads again, sent everything it missed from the
//   history, in order, then live messages again; if the history no longer
//   holds all of it, it is sent push:recovery {recovered: false} in-band;
// - with recovery off, the message is lost for that connection only,
//   counted in push_deliveries_dropped_total, and the page is told with
//   push:missed {missed: n}.
// A browser that keeps up gets every message either way.
//
// The stalled pages are raw engine.io WebSocket connections that join "/"
// and then stop reading from their TCP socket (support/engineio.mjs): the
// kernel buffers fill, then the daemon's writes to them stall, then their
// queues fill.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ClientPool } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { RawWebSocket } from './support/engineio.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { rssMiB } from './support/observe.mjs';
import { Kind, RawConnection, request } from './support/publish.mjs';
import { startRedis } from './support/redis.mjs';
import { waitUntil } from './support/wait.mjs';

const STALLED = 200;
const MESSAGES = 10_000;
/** Published back to back, then the test waits for the reader to catch up. */
const BATCH = 200;
/** About 1 KiB per message. */
const FILLER = 'x'.repeat(1000);

/**
 * Without a bound, 200 stalled connections would each hold all 10,000
 * messages of 1 KiB: about 2 GiB. With it, each holds at most 1024 queued
 * messages, and a broadcast's packet is shared by every queue, so the
 * whole backlog is about 1024 distinct messages plus the queues' slots.
 * With recovery on, the history adds the 10,000 messages once (about
 * 11 MiB), whatever the number of stalled pages.
 * (The kernel's socket buffers take a few MiB more per stalled connection
 * before anything queues in the daemon; that memory is not the daemon's.)
 * The debug daemon peaks around 85 MiB in this test; 160 MiB is the stated
 * bound, far below what unbounded queues would take.
 */
const RSS_BOUND_MIB = 160;

/** The page's event of this name, as [name, ...arguments] lists. */
const eventsNamed = (page, name) => page.events().filter(([event]) => event === name);

/** The sequence number in an offset ("<epoch>-<seq>"). */
const seqOf = (offset) => Number(offset.split('-')[1]);

/**
 * Publishes `count` messages `{i, filler}` as `event` to everyone, `BATCH`
 * at a time; returns the sum of their recipient counts. `between(n)` runs
 * after each batch, `n` being the messages published so far.
 */
async function publishMany(publisher, count, { event = 'tick', filler = FILLER, between = async () => {} } = {}) {
  let recipients = 0;
  for (let n = 0; n < count; n += BATCH) {
    const end = Math.min(n + BATCH, count);
    const frames = [];
    for (let i = n; i < end; i++) frames.push(request.publish(i + 1, { event, data: { i, filler } }));
    publisher.write(Buffer.concat(frames));
    for (let i = n; i < end; i++) {
      const reply = await publisher.reply();
      assert.equal(reply.kind, Kind.PUBLISHED, `publish ${i}: ${JSON.stringify(reply)}`);
      recipients += reply.recipients;
    }
    await between(end);
  }
  return recipients;
}

async function metric(daemon, series) {
  return seriesValue(await scrape(daemon), series);
}

for (const recovery of ['on', 'off']) {
  describe(`${STALLED} slow consumers, recovery ${recovery}`, () => {
    let daemon;
    let reader;
    const stalled = [];
    const clients = new ClientPool();
    let publisher;

    before(async () => {
      daemon = await startDaemon({ args: recovery === 'off' ? ['--recovery-window', '0'] : [], logLevel: 'info' });
      reader = await clients.connect(daemon, { name: 'reader' });
      for (let i = 0; i < STALLED; i += 50) {
        const batch = await Promise.all(Array.from({ length: Math.min(50, STALLED - i) }, () => RawWebSocket.open(daemon)));
        stalled.push(...batch);
      }
      for (const raw of stalled) raw.pause();
      publisher = await RawConnection.open(daemon.socketPath);
      await publisher.handshake();
    });
    after(async () => {
      publisher?.destroy();
      for (const raw of stalled) raw.terminate();
      clients.closeAll();
      await daemon?.cleanup();
    });

    test(`${STALLED} stalled clients while ${MESSAGES} messages are broadcast: bounded memory, and the reader gets every message`, async (t) => {
      const startRss = rssMiB(daemon);
      let peakRss = startRss;
      const sampler = setInterval(() => { peakRss = Math.max(peakRss, rssMiB(daemon)); }, 100);
      const droppedBefore = await metric(daemon, 'push_deliveries_dropped_total');
      const started = Date.now();
      let recipients;
      try {
        // The reader keeps up: each batch reaches it before the next, as a
        // site's steady publishing would let it.
        recipients = await publishMany(publisher, MESSAGES, {
          between: (n) => reader.waitFor('tick', (data) => data.i === n - 1),
        });
      } finally {
        clearInterval(sampler);
      }
      const seconds = (Date.now() - started) / 1000;
      const endRss = rssMiB(daemon);
      peakRss = Math.max(peakRss, endRss);
      const page = await scrape(daemon);
      const dropped = seriesValue(page, 'push_deliveries_dropped_total') - droppedBefore;
      const catchUps = seriesValue(page, 'push_slow_consumer_catch_ups_started_total');
      t.diagnostic(`${MESSAGES} broadcasts to ${STALLED} stalled + 1 reading client in ${seconds.toFixed(1)} s; `
        + `daemon VmRSS ${startRss} MiB at start, ${peakRss} MiB peak, ${endRss} MiB at end; `
        + `${dropped} deliveries dropped, ${catchUps} catch-ups started`);

      const ticks = reader.received('tick');
      assert.equal(ticks.length, MESSAGES, 'the reader got every message');
      assert.ok(ticks.every((data, i) => data.i === i), 'in order, each once');
      assert.ok(peakRss < RSS_BOUND_MIB, `peak VmRSS ${peakRss} MiB`);
      if (recovery === 'on') {
        // Every stalled page was taken off live messages (more than once
        // if the kernel's buffers took a catch-up before they filled), and
        // is to be caught up: nothing lost, and each counts as a recipient.
        assert.ok(catchUps >= STALLED, `each stalled page is being caught up (${catchUps} catch-ups)`);
        assert.equal(dropped, 0, 'nothing was dropped');
        assert.equal(recipients, (STALLED + 1) * MESSAGES, 'every connection counts for every message');
      } else {
        // What the stalled clients could not take was dropped and counted:
        // each message was either handed to a connection (the PUBLISHED
        // count) or dropped for it.
        assert.equal(catchUps, 0);
        assert.ok(dropped > 0, 'some deliveries were dropped');
        assert.equal(recipients + dropped, (STALLED + 1) * MESSAGES, 'handed over + dropped = every connection, every message');
      }
    });

    test('the daemon still serves new browsers, and lets the stalled connections go', async (t) => {
      const fresh = await clients.connect(daemon, { name: 'fresh' });
      publisher.write(request.publish(1, { event: 'after', data: 'ok' }));
      assert.equal((await publisher.reply()).kind, Kind.PUBLISHED);
      assert.equal(await fresh.waitFor('after'), 'ok');
      assert.equal(await reader.waitFor('after'), 'ok');

      for (const raw of stalled) raw.terminate();
      await waitUntil(async () => await metric(daemon, 'push_connections{namespace="/",transport="websocket",protocol="5"}') === 2, {
        what: 'the daemon to drop the stalled connections',
      });
      if (recovery === 'on') {
        // Their catch-ups end with them.
        const started = await metric(daemon, 'push_slow_consumer_catch_ups_started_total');
        await waitUntil(async () => {
          const page = await scrape(daemon);
          const ended = ['recovered', 'reset', 'closed']
            .map((outcome) => seriesValue(page, `push_slow_consumer_catch_ups_total{outcome="${outcome}"}`));
          return ended[2] === STALLED && ended[0] + ended[1] + ended[2] === started;
        }, { what: 'the stalled pages\' catch-ups to end' });
      }
      t.diagnostic(`daemon VmRSS after the stalled clients left: ${rssMiB(daemon)} MiB`);
    });
  });
}

// The reported case (issue #23): one page with a small queue stops reading
// while 20,000 messages of 2 KB are published. Before, it got 1,428 of them,
// with a first gap at message 64, and was never told.
const REPORTED = { messages: 20_000, filler: 'y'.repeat(2000), queue: '64' };

/**
 * A daemon with a queue of 64 messages and `args`; one page joined and then
 * paused, and a publisher. The page's connection is not ended by its
 * missed heartbeats while the test publishes (ping interval 2 minutes).
 */
/** A daemon, a raw page and a publisher for test `t`, closed when it ends. */
async function stalledPage(t, args) {
  const daemon = await startDaemon({
    args: ['--max-buffered-messages', REPORTED.queue, '--ping-interval', '120s', ...args],
    logLevel: 'info',
  });
  const opened = { daemon };
  t.after(async () => {
    opened.publisher?.destroy();
    opened.page?.terminate();
    await daemon.cleanup();
  });
  opened.page = await RawWebSocket.open(daemon);
  opened.publisher = await RawConnection.open(daemon.socketPath);
  await opened.publisher.handshake();
  return opened;
}

describe('a page that stops reading, with recovery on', () => {
  test(`it is caught up once it reads again: all ${REPORTED.messages} messages, in order, each once`, async (t) => {
    const { daemon, page, publisher } = await stalledPage(t, []);
    const [, status] = JSON.parse((await page.next((m) => m.startsWith('42["push:recovery"'))).slice(2));
    assert.equal(status.recovered, false, 'a first connect starts where the stream is');
    page.pause();

    const recipients = await publishMany(publisher, REPORTED.messages, { filler: REPORTED.filler });
    assert.equal(recipients, REPORTED.messages, 'the page counts as a recipient of every message');
    const catchUps = await metric(daemon, 'push_slow_consumer_catch_ups_started_total');
    assert.ok(catchUps >= 1, 'the page\'s queue filled: it is to be caught up');
    assert.equal(await metric(daemon, 'push_deliveries_dropped_total'), 0);

    page.resume();
    await waitUntil(() => eventsNamed(page, 'tick').length >= REPORTED.messages, {
      timeoutMs: 120_000,
      what: () => `the page to have every message (it has ${eventsNamed(page, 'tick').length})`,
    });
    const ticks = eventsNamed(page, 'tick');
    assert.equal(ticks.length, REPORTED.messages, 'each once');
    ticks.forEach(([, data, { offset }], i) => {
      assert.equal(data.i, i, `message ${i} in its place`);
      assert.equal(seqOf(offset), seqOf(status.offset) + i + 1, `message ${i} with its own offset`);
    });
    assert.equal(eventsNamed(page, 'push:recovery').length, 1, 'a complete catch-up needs no status');
    await waitUntil(async () => await metric(daemon, 'push_slow_consumer_catch_ups_total{outcome="recovered"}') === catchUps, {
      what: 'every catch-up to be counted as recovered',
    });

    // Live again: the next message comes straight away.
    publisher.write(request.publish(1, { event: 'live', data: 'after' }));
    assert.equal((await publisher.reply()).kind, Kind.PUBLISHED);
    const live = await page.next((m) => m.startsWith('42["live"'));
    assert.equal(seqOf(JSON.parse(live.slice(2))[2].offset), seqOf(status.offset) + REPORTED.messages + 1);
    t.diagnostic(`the queue filled ${catchUps} times and the page was caught up each time; ${ticks.length} messages in order`);
  });
});

describe('a page that stops reading for longer than the history keeps', () => {
  test('it is sent push:recovery with recovered false, in-band, then everything after it', async (t) => {
    // The history keeps 1,000 messages: the page misses more than that.
    const { daemon, page, publisher } = await stalledPage(t, ['--recovery-max-messages', '1000']);
    await page.next((m) => m.startsWith('42["push:recovery"'));
    page.pause();
    await publishMany(publisher, REPORTED.messages, { filler: REPORTED.filler });
    page.resume();
    // One more message, published once the page reads: it must come after
    // the status, live.
    await waitUntil(() => eventsNamed(page, 'push:recovery').length === 2, {
      timeoutMs: 60_000,
      what: 'the in-band push:recovery status',
    });
    publisher.write(request.publish(1, { event: 'tick', data: { i: REPORTED.messages, filler: '' } }));
    assert.equal((await publisher.reply()).kind, Kind.PUBLISHED);
    await waitUntil(() => eventsNamed(page, 'tick').at(-1)?.[1].i === REPORTED.messages, { what: 'the last message' });

    const events = page.events().filter(([name]) => name === 'tick' || name === 'push:recovery');
    const reset = events.findIndex(([name], at) => name === 'push:recovery' && at > 0);
    const [, status] = events[reset];
    assert.deepEqual({ recovered: status.recovered, replayed: status.replayed }, { recovered: false, replayed: 0 });
    const before = events.slice(1, reset).map(([, data]) => data.i);
    const afterReset = events.slice(reset + 1).map(([, data, { offset }]) => [data.i, seqOf(offset)]);
    // Before the status: the messages the page took, from the first, in
    // order, without a gap. After it: everything after the status's offset.
    assert.ok(before.length > 0 && before.every((i, at) => i === at), 'in order and without a gap before the status');
    assert.ok(afterReset.length > 0, 'messages follow the status');
    afterReset.forEach(([i, seq], at) => {
      assert.equal(seq, seqOf(status.offset) + at + 1, 'after the status, from its offset on, without a gap');
      assert.equal(i, afterReset[0][0] + at);
    });
    assert.equal(await metric(daemon, 'push_slow_consumer_catch_ups_total{outcome="reset"}'), 1);
  });
});

describe('a page that stops reading, with recovery off', () => {
  test('it loses what its queue could not take, and is told how many with push:missed', async (t) => {
    const { daemon, page, publisher } = await stalledPage(t, ['--recovery-window', '0']);
    page.pause();
    const recipients = await publishMany(publisher, REPORTED.messages, { filler: REPORTED.filler });
    const dropped = await metric(daemon, 'push_deliveries_dropped_total');
    assert.ok(dropped > 0, 'the queue filled');
    assert.equal(recipients + dropped, REPORTED.messages);

    page.resume();
    const missed = () => eventsNamed(page, 'push:missed').reduce((sum, [, { missed }]) => sum + missed, 0);
    await waitUntil(() => eventsNamed(page, 'tick').length + missed() === REPORTED.messages, {
      timeoutMs: 60_000,
      what: () => `received (${eventsNamed(page, 'tick').length}) + missed (${missed()}) to add up to every message`,
    });
    assert.equal(missed(), dropped, 'the page is told of every message it lost');
    const order = eventsNamed(page, 'tick').map(([, data]) => data.i);
    assert.ok(order.every((i, at) => at === 0 || i > order[at - 1]), 'what it got is in order');
    const notices = await metric(daemon, 'push_missed_notices_total');
    assert.equal(notices, eventsNamed(page, 'push:missed').length);
  });
});

// In a cluster with recovery on, messages reach every node through the
// cluster's history in Redis, each node handing them to its own pages: a
// page stalled on another node than the publishing one is caught up there.
// With recovery off, a page is told what it missed on whichever node it is:
// the node that took the publish, or one the relay brought it to.
describe('a page that stops reading, in a cluster', () => {
  let redis;
  const started = [];
  after(async () => {
    for (const item of started.reverse()) await item();
    await redis?.kill();
  });

  async function node(name, args) {
    redis ??= await startRedis();
    const daemon = await startDaemon({
      args: ['--adapter', 'redis', '--redis-url', redis.url, '--node-id', name,
        '--max-buffered-messages', REPORTED.queue, '--ping-interval', '120s', ...args],
      logLevel: 'info',
    });
    started.push(() => daemon.cleanup());
    return daemon;
  }

  async function pausedPage(daemon) {
    const page = await RawWebSocket.open(daemon);
    started.push(() => page.terminate());
    return page;
  }

  async function publisherOf(daemon) {
    const publisher = await RawConnection.open(daemon.socketPath);
    started.push(() => publisher.destroy());
    await publisher.handshake();
    return publisher;
  }

  test('recovery on: a page on another node is caught up, in order, each once', async () => {
    const a = await node('slow-a', ['--redis-prefix', 'slow-on']);
    const b = await node('slow-b', ['--redis-prefix', 'slow-on']);
    const page = await pausedPage(b);
    const [, status] = JSON.parse((await page.next((m) => m.startsWith('42["push:recovery"'))).slice(2));
    page.pause();
    await publishMany(await publisherOf(a), REPORTED.messages, { filler: REPORTED.filler });
    page.resume();
    await waitUntil(() => eventsNamed(page, 'tick').length >= REPORTED.messages, {
      timeoutMs: 120_000,
      what: () => `the page to have every message (it has ${eventsNamed(page, 'tick').length})`,
    });
    const ticks = eventsNamed(page, 'tick');
    assert.equal(ticks.length, REPORTED.messages, 'each once');
    ticks.forEach(([, data, { offset }], i) => {
      assert.equal(data.i, i, `message ${i} in its place`);
      assert.equal(seqOf(offset), seqOf(status.offset) + i + 1);
    });
    assert.ok(await metric(b, 'push_slow_consumer_catch_ups_started_total') >= 1, 'caught up on its own node');
    assert.equal(await metric(b, 'push_deliveries_dropped_total'), 0);
  });

  test('recovery off: a page on either node is told with push:missed', async () => {
    const a = await node('slow-c', ['--redis-prefix', 'slow-off', '--recovery-window', '0']);
    const b = await node('slow-d', ['--redis-prefix', 'slow-off', '--recovery-window', '0']);
    const onA = await pausedPage(a);
    const onB = await pausedPage(b);
    // A page on B that keeps reading: once it has the last message, B has
    // handed out every one the relay brought.
    const readerOnB = await pausedPage(b);
    onA.pause();
    onB.pause();
    await publishMany(await publisherOf(a), REPORTED.messages, { filler: REPORTED.filler });
    const accounted = (page) => eventsNamed(page, 'tick').length
      + eventsNamed(page, 'push:missed').reduce((sum, [, { missed }]) => sum + missed, 0);
    await waitUntil(() => accounted(readerOnB) === REPORTED.messages, {
      timeoutMs: 60_000,
      what: () => `the reader on B to have every message or be told (${accounted(readerOnB)})`,
    });
    const droppedForReader = REPORTED.messages - eventsNamed(readerOnB, 'tick').length;
    for (const [daemon, page] of [[a, onA], [b, onB]]) {
      const dropped = await metric(daemon, 'push_deliveries_dropped_total');
      assert.ok(dropped > 0, 'the queue filled');
      page.resume();
      await waitUntil(() => accounted(page) === REPORTED.messages, {
        timeoutMs: 60_000,
        what: () => `received + missed (${accounted(page)}) to add up to every message`,
      });
      const missed = accounted(page) - eventsNamed(page, 'tick').length;
      // B's count has what the reader there lost too, if anything.
      assert.equal(missed, daemon === b ? dropped - droppedForReader : dropped, 'the page is told of every message it lost');
      const order = eventsNamed(page, 'tick').map(([, data]) => data.i);
      assert.ok(order.every((i, at) => at === 0 || i > order[at - 1]), 'what it got is in order');
    }
  });
});

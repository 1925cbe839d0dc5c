// Slow consumers: 200 browsers that stop reading while 10,000 messages are
// broadcast. The policy (docs/security.md): each connection has a queue of
// at most max_buffered_messages (default 1024) messages; what does not fit
// is dropped for that connection only, and counted in
// push_deliveries_dropped_total. So the daemon's memory stays bounded, and
// a browser that keeps up gets every message.
//
// The stalled clients are raw engine.io WebSocket connections that join "/"
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
 * (The kernel's socket buffers take a few MiB more per stalled connection
 * before anything queues in the daemon; that memory is not the daemon's.)
 * The debug daemon peaks around 85 MiB in this test; 160 MiB is the stated
 * bound, far below what unbounded queues would take.
 */
const RSS_BOUND_MIB = 160;

describe('slow consumers', () => {
  let daemon;
  let reader;
  const stalled = [];
  const clients = new ClientPool();
  let publisher;

  before(async () => {
    daemon = await startDaemon({ logLevel: 'info' });
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
    const droppedBefore = seriesValue(await scrape(daemon), 'push_deliveries_dropped_total');
    const started = Date.now();
    let recipients = 0;
    try {
      for (let n = 0; n < MESSAGES; n += BATCH) {
        const frames = [];
        for (let i = n; i < n + BATCH; i++) frames.push(request.publish(i + 1, { event: 'tick', data: { i, filler: FILLER } }));
        publisher.write(Buffer.concat(frames));
        for (let i = n; i < n + BATCH; i++) {
          const reply = await publisher.reply();
          assert.equal(reply.kind, Kind.PUBLISHED, `publish ${i}: ${JSON.stringify(reply)}`);
          recipients += reply.recipients;
        }
        // The reader keeps up: wait for it to have this batch before the
        // next, as a site's steady publishing would let it.
        await reader.waitFor('tick', (data) => data.i === n + BATCH - 1);
      }
    } finally {
      clearInterval(sampler);
    }
    const seconds = (Date.now() - started) / 1000;
    const endRss = rssMiB(daemon);
    peakRss = Math.max(peakRss, endRss);
    const dropped = seriesValue(await scrape(daemon), 'push_deliveries_dropped_total') - droppedBefore;
    t.diagnostic(`${MESSAGES} broadcasts to ${STALLED} stalled + 1 reading client in ${seconds.toFixed(1)} s; `
      + `daemon VmRSS ${startRss} MiB at start, ${peakRss} MiB peak, ${endRss} MiB at end; ${dropped} deliveries dropped`);

    const ticks = reader.received('tick');
    assert.equal(ticks.length, MESSAGES, 'the reader got every message');
    assert.ok(ticks.every((data, i) => data.i === i), 'in order, each once');
    assert.ok(peakRss < RSS_BOUND_MIB, `peak VmRSS ${peakRss} MiB`);
    // What the stalled clients could not take was dropped and counted: each
    // message was either handed to a connection (the PUBLISHED count) or
    // dropped for it.
    assert.ok(dropped > 0, 'some deliveries were dropped');
    assert.equal(recipients + dropped, (STALLED + 1) * MESSAGES, 'handed over + dropped = every connection, every message');
  });

  test('the daemon still serves new browsers, and lets the stalled connections go', async (t) => {
    const fresh = await clients.connect(daemon, { name: 'fresh' });
    publisher.write(request.publish(1, { event: 'after', data: 'ok' }));
    assert.equal((await publisher.reply()).kind, Kind.PUBLISHED);
    assert.equal(await fresh.waitFor('after'), 'ok');
    assert.equal(await reader.waitFor('after'), 'ok');

    for (const raw of stalled) raw.terminate();
    await waitUntil(async () => seriesValue(await scrape(daemon), 'push_connections{namespace="/",transport="websocket",protocol="5"}') === 2, {
      what: 'the daemon to drop the stalled connections',
    });
    t.diagnostic(`daemon VmRSS after the stalled clients left: ${rssMiB(daemon)} MiB`);
  });
});

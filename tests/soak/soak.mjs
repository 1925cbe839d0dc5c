#!/usr/bin/env node
// Soak test: runs the real daemon for a bounded time under churning
// browsers and steady publishing, and reports its resident memory at the
// start, every minute and at the end. The memory must stay flat.
//
//   node tests/soak/soak.mjs --minutes 10
//
// Options (all optional):
//   --minutes N     how long to run (default 10)
//   --steady N      browsers that stay connected all along (default 100)
//   --rate N        publishes per second (default 50)
//   --churn N       browsers connected and dropped per second (default 10)
//
// What runs, with the daemon built by `cargo build -p push-core` (or
// PUSH_CORE_BIN) and the helpers of the integration tests:
// - an auth site (tests/integration/support/auth-backend.mjs) knowing 300
//   users, with a 1 s cache TTL so that the daemon keeps asking it;
// - `steady` browsers (users 1..steady, websocket and polling) that must
//   receive every broadcast and every private message sent to them;
// - churning browsers: every 1/churn s one connects (a random user or a
//   guest, random transport), stays up to 3 s and leaves; one in five is a
//   raw WebSocket that vanishes without a close;
// - one long-lived publisher sending `rate` publishes per second (a third
//   broadcasts, a third to one steady user, a third to a room), and a
//   short-lived publisher connection every second.
// The verdict fails (exit 1) if a steady browser missed a message, a
// publish failed, or the RSS at the end is more than 20% + 4 MiB over the
// RSS after the first minute (the warm-up).

import { parseArgs } from 'node:util';

import { cookieFor, startAuthBackend } from '../integration/support/auth-backend.mjs';
import { ClientPool } from '../integration/support/clients.mjs';
import { startDaemon } from '../integration/support/daemon.mjs';
import { RawWebSocket } from '../integration/support/engineio.mjs';
import { scrape, seriesValue } from '../integration/support/metrics.mjs';
import { rssMiB } from '../integration/support/observe.mjs';
import { Kind, publisherFor, RawConnection, request, stats } from '../integration/support/publish.mjs';
import { sleep, waitUntil } from '../integration/support/wait.mjs';

const { values: options } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    steady: { type: 'string', default: '100' },
    rate: { type: 'string', default: '50' },
    churn: { type: 'string', default: '10' },
  },
});
const MINUTES = Number(options.minutes);
const STEADY = Number(options.steady);
const RATE = Number(options.rate);
const CHURN = Number(options.churn);
const USERS = 300;

const log = (line) => process.stdout.write(`${line}\n`);

const users = {};
for (let n = 1; n <= USERS; n++) users[`sid-u${n}`] = { user_id: `u${n}`, rooms: [`group:${n % 10}`] };

const backend = await startAuthBackend({ users });
// The backend records every call; a soak makes hundreds of thousands.
setInterval(() => backend.calls.splice(0), 10_000).unref();
const daemon = await startDaemon({
  logLevel: 'warn',
  args: ['--auth-url', backend.url, '--auth-cache-ttl', '1s', '--client-events-per-minute', '600'],
});
const steadyPool = new ClientPool();
const churnPool = new ClientPool();
let stopping = false;
const counters = { publishes: 0, publishFailures: 0, churned: 0, churnFailures: 0, shortPublishers: 0 };

async function shutdown(code) {
  stopping = true;
  steadyPool.closeAll();
  churnPool.closeAll();
  await daemon.cleanup().catch(() => {});
  await backend.close().catch(() => {});
  process.exit(code);
}
process.on('SIGINT', () => shutdown(130));

try {
  // ---- steady browsers -----------------------------------------------------
  const steady = [];
  for (let n = 1; n <= STEADY; n += 20) {
    const batch = [];
    for (let m = n; m < n + 20 && m <= STEADY; m++) {
      batch.push(steadyPool.connect(daemon, {
        transport: m % 4 === 0 ? 'polling' : 'websocket',
        cookie: cookieFor(`sid-u${m}`),
        name: `steady u${m}`,
      }).then((client) => { client.user = `u${m}`; client.group = `group:${m % 10}`; return client; }));
    }
    steady.push(...await Promise.all(batch));
  }
  // What each steady browser must have received, by event.
  const expected = { tick: 0, dm: new Map(), group: new Map() };

  // ---- churn ---------------------------------------------------------------
  const churnOne = async () => {
    const kind = Math.random();
    const user = 1 + Math.floor(Math.random() * USERS);
    const lifetime = Math.random() * 3000;
    try {
      if (kind < 0.2) {
        const raw = await RawWebSocket.open(daemon);
        await sleep(lifetime);
        raw.terminate(); // gone without a close
      } else {
        const client = await churnPool.connect(daemon, {
          transport: kind < 0.6 ? 'websocket' : kind < 0.8 ? 'polling' : 'upgrade',
          cookie: kind < 0.9 ? cookieFor(`sid-u${user}`) : undefined,
          name: 'churner',
        });
        await sleep(lifetime);
        client.close();
        churnPool.clients = churnPool.clients.filter((c) => c !== client);
      }
      counters.churned++;
    } catch {
      counters.churnFailures++;
    }
  };
  const churnLoop = (async () => {
    while (!stopping) {
      churnOne();
      await sleep(1000 / CHURN);
    }
  })();

  // ---- publishing ----------------------------------------------------------
  const publisher = await RawConnection.open(daemon.socketPath);
  await publisher.handshake();
  let id = 0;
  const publishOne = async () => {
    const n = ++id;
    const which = n % 3;
    let message;
    if (which === 0) {
      message = { event: 'tick', data: { n } };
      expected.tick++;
    } else if (which === 1) {
      const target = steady[n % steady.length];
      message = { event: 'dm', users: [target.user], data: { n } };
      expected.dm.set(target, (expected.dm.get(target) ?? 0) + 1);
    } else {
      const group = `group:${n % 10}`;
      message = { event: 'group', rooms: [group], data: { n } };
      for (const client of steady) if (client.group === group) expected.group.set(client, (expected.group.get(client) ?? 0) + 1);
    }
    const reply = await publisher.call(request.publish(n, message));
    if (reply.kind === Kind.PUBLISHED) counters.publishes++;
    else counters.publishFailures++;
  };
  const publishLoop = (async () => {
    const started = Date.now();
    let sent = 0;
    while (!stopping) {
      const due = Math.floor(((Date.now() - started) / 1000) * RATE);
      while (sent < due && !stopping) {
        await publishOne();
        sent++;
      }
      await sleep(5);
    }
  })();
  const shortPublisherLoop = (async () => {
    while (!stopping) {
      try {
        const connection = await RawConnection.open(daemon.socketPath);
        await connection.handshake();
        await connection.call(request.ping(2));
        connection.destroy();
        counters.shortPublishers++;
      } catch {
        counters.publishFailures++;
      }
      await sleep(1000);
    }
  })();

  // ---- report ----------------------------------------------------------------
  const rows = [];
  const sample = async (label) => {
    const s = await stats(daemon.socketPath);
    const metrics = await scrape(daemon);
    const row = {
      label,
      rss: rssMiB(daemon),
      connections: s.connections,
      publishes: s.publishes,
      deliveries: s.deliveries,
      dropped: seriesValue(metrics, 'push_deliveries_dropped_total'),
      authCalls: s.auth.calls,
      churned: counters.churned,
    };
    rows.push(row);
    log(`| ${row.label} | ${row.rss} | ${row.connections} | ${row.publishes} | ${row.deliveries} | ${row.dropped} | ${row.authCalls} | ${row.churned} |`);
    return row;
  };
  log(`soak: ${MINUTES} min, ${STEADY} steady browsers, ${RATE} publishes/s, ${CHURN} churning browsers/s, daemon ${daemon.child.pid} on ${daemon.url}`);
  log('');
  log('| time | VmRSS (MiB) | connections | publishes | deliveries | dropped | auth calls | churned browsers |');
  log('|---|---|---|---|---|---|---|---|');
  await sample('start');
  for (let minute = 1; minute <= MINUTES; minute++) {
    await sleep(60_000);
    await sample(`${minute} min`);
  }

  stopping = true;
  await Promise.all([churnLoop, publishLoop, shortPublisherLoop]);
  publisher.destroy();
  churnPool.closeAll();
  await waitUntil(async () => (await stats(daemon.socketPath)).connections === steady.length, {
    timeoutMs: 30_000,
    what: 'the churning browsers to be gone',
  });
  // Everything published has arrived once a marker published after it has.
  await steadyPool.flush(publisherFor(daemon), steady);
  const end = await sample('end (churn stopped)');

  let missed = 0;
  for (const client of steady) {
    missed += expected.tick - client.received('tick').length;
    missed += (expected.dm.get(client) ?? 0) - client.received('dm').length;
    missed += (expected.group.get(client) ?? 0) - client.received('group').length;
  }
  const warm = rows[1] ?? rows[0];
  const bound = warm.rss * 1.2 + 4;
  const flat = end.rss <= bound;
  log('');
  log(`publishes answered: ${counters.publishes}, failed: ${counters.publishFailures}; short-lived publisher connections: ${counters.shortPublishers}`);
  log(`browsers churned: ${counters.churned} (failed to connect: ${counters.churnFailures}); messages missed by steady browsers: ${missed}`);
  log(`RSS: ${rows[0].rss} MiB at start, ${warm.rss} MiB after warm-up, ${Math.max(...rows.map((r) => r.rss))} MiB peak, ${end.rss} MiB at end (bound ${bound.toFixed(1)} MiB): ${flat ? 'flat' : 'GREW'}`);
  const ok = flat && missed === 0 && counters.publishFailures === 0;
  log(ok ? 'verdict: PASS' : 'verdict: FAIL');
  await shutdown(ok ? 0 : 1);
} catch (error) {
  log(`soak failed: ${error.stack}\n${daemon.logTail()}`);
  await shutdown(1);
}

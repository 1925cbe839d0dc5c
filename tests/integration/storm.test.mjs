// A reconnect storm after a deploy: every browser comes back at once, and
// each needs the site to say who it is.
//
// The site here is a real HTTP server with the capacity of a small PHP pool:
// it works on at most 8 calls at a time, about 300 ms each, queues a few
// dozen more (as PHP-FPM's listen backlog does) and answers 503 beyond that.
// 2,000 tabs of 1,000 users (two tabs per user, same cookie) connect at
// once, with the daemon's default auth settings. The site cannot answer
// them all within auth_timeout; documented behaviour (docs/security.md):
//
// - tabs with the same cookie share one call, so the site is asked at most
//   once per cookie, plus once more after each error it returned and each
//   call the daemon gave up on (auth_timeout);
// - a tab whose identity could not be decided is identified later, in the
//   background, with nothing for the user to do: every tab ends up
//   receiving its user's private messages.
//
// The second part checks the background retry one connection at a time:
// after a 5xx, under --auth-required (nothing received before it is
// identified; disconnected if the site then says guest), and that retries
// stop when the connection goes away.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cookieFor } from './support/auth-backend.mjs';
import { startBusySite } from './support/busy-site.mjs';
import { ClientPool } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { Kind, online, RawConnection, request, sendOk, stats } from './support/publish.mjs';
import { Resources } from './support/resources.mjs';
import { sleep, waitUntil } from './support/wait.mjs';

const USERS = 1000;
const TABS_PER_USER = 2;
/** What the site can take: calls worked on at once, and how long each takes. */
const SITE_WORKERS = 8;
const SITE_CALL_MS = 300;
/** Calls the site keeps waiting for a worker; beyond that it answers 503. */
const SITE_BACKLOG = 64;
/**
 * Bounds on the whole storm, guards against a hang only. The site alone
 * needs USERS * SITE_CALL_MS / SITE_WORKERS (37.5 s) to answer every
 * cookie once.
 */
const CONNECT_GUARD_MS = 60_000;
const IDENTIFIED_GUARD_MS = 80_000;

const sidOf = (n) => `sid-storm-${n}`;
const userOf = (n) => `u${n}`;

/** The site's answers: every user is known to it, in no rooms. */
function siteUsers() {
  const users = {};
  for (let n = 1; n <= USERS; n++) users[sidOf(n)] = { user_id: userOf(n), rooms: [] };
  return users;
}

/** Asks the daemon, over one publish connection, how many tabs each user has. */
async function connectionsPerUser(socketPath) {
  const connection = await RawConnection.open(socketPath);
  try {
    await connection.handshake();
    const frames = [];
    for (let n = 1; n <= USERS; n++) frames.push(request.online(n, '/', userOf(n)));
    connection.write(Buffer.concat(frames));
    const counts = new Map();
    for (let n = 1; n <= USERS; n++) {
      const reply = await connection.reply();
      assert.equal(reply.kind, Kind.ONLINE_REPLY, JSON.stringify(reply));
      counts.set(reply.id, reply.connections);
    }
    return counts;
  } finally {
    connection.destroy();
  }
}

describe('a reconnect storm against a site that can take 8 calls at a time', () => {
  let site;
  let daemon;
  const clients = new ClientPool();
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
    await site?.close();
  });

  test(`${USERS * TABS_PER_USER} tabs of ${USERS} users connect at once; every tab gets its user's private message`, async (t) => {
    site = await startBusySite({ users: siteUsers(), workers: SITE_WORKERS, callMs: SITE_CALL_MS, backlog: SITE_BACKLOG });
    // The daemon's defaults (auth_timeout 2s, auth_max_concurrency 32),
    // but a cache that outlives the storm: on a loaded machine the storm
    // can take longer than the default 30s, and a tab connecting after its
    // cookie's answer expired rightly asks again.
    daemon = await startDaemon({ logLevel: 'warn', args: ['--auth-url', site.url, '--auth-cache-ttl', '10m'] });
    const started = Date.now();

    const tabs = new Map(); // user number -> its clients
    const connecting = [];
    for (let n = 1; n <= USERS; n++) {
      tabs.set(n, []);
      for (let tab = 1; tab <= TABS_PER_USER; tab++) {
        connecting.push(clients.connect(daemon, {
          cookie: cookieFor(sidOf(n)),
          name: `user ${n} tab ${tab}`,
          timeoutMs: CONNECT_GUARD_MS,
        }).then((client) => tabs.get(n).push(client)));
      }
    }
    await Promise.all(connecting);
    t.diagnostic(`all ${connecting.length} tabs connected after ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // Nobody reconnects or reloads: the tabs that could not be identified
    // at connect must be identified by the daemon on its own.
    let counts;
    await waitUntil(async () => {
      counts = await connectionsPerUser(daemon.socketPath);
      return [...counts.values()].every((c) => c === TABS_PER_USER);
    }, {
      timeoutMs: IDENTIFIED_GUARD_MS,
      intervalMs: 500,
      what: () => {
        const missing = [...counts.values()].reduce((sum, c) => sum + (TABS_PER_USER - c), 0);
        return `every tab to be identified (${missing} not yet)\n${daemon.logTail(10)}`;
      },
    });
    t.diagnostic(`all tabs identified after ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // One private message per user, each naming its user.
    const publisher = await RawConnection.open(daemon.socketPath);
    try {
      await publisher.handshake();
      const frames = [];
      for (let n = 1; n <= USERS; n++) {
        frames.push(request.publish(n, { event: 'private', users: [userOf(n)], data: { to: userOf(n) } }));
      }
      publisher.write(Buffer.concat(frames));
      for (let n = 1; n <= USERS; n++) {
        const reply = await publisher.reply();
        assert.equal(reply.kind, Kind.PUBLISHED, JSON.stringify(reply));
        assert.equal(reply.recipients, TABS_PER_USER, `recipients of the message to user ${reply.id}`);
      }
    } finally {
      publisher.destroy();
    }
    await Promise.all([...tabs.entries()].flatMap(([n, userTabs]) =>
      userTabs.map(async (client) => {
        assert.deepEqual(await client.waitFor('private'), { to: userOf(n) });
      })));
    for (const [n, userTabs] of tabs) {
      for (const client of userTabs) assert.deepEqual(client.received('private'), [{ to: userOf(n) }], client.name);
    }

    // The site was asked once per cookie, plus once after each error.
    const { perSid, mostWorking } = await site.tally();
    let calls = 0;
    let errors = 0;
    let abandoned = 0;
    for (const tally of perSid.values()) {
      calls += tally.calls;
      errors += tally.errors;
      abandoned += tally.abandoned;
    }
    const metrics = await scrape(daemon);
    const retries = seriesValue(metrics, 'push_auth_retries_total');
    const merged = seriesValue(metrics, 'push_auth_merged_total');
    const cacheHits = seriesValue(metrics, 'push_auth_cache_hits_total');
    t.diagnostic(`site: ${calls} calls for ${USERS} cookies, ${errors} answered 503, ${abandoned} abandoned by the daemon; ` +
      `daemon: ${retries} background attempts, ${merged} merged lookups, ${cacheHits} cache hits; ` +
      `${((Date.now() - started) / 1000).toFixed(1)} s in all`);

    assert.equal(perSid.size, USERS, `the site was asked about ${[...perSid.keys()].filter((sid) => !/^sid-storm-/.test(sid))}`);
    // Once per cookie, plus once after each error the site answered, each
    // call the daemon dropped unanswered, and each call the daemon gave up
    // on just as the site answered it (the site counts that one answered:
    // its answer was written as the daemon's timeout fired). The daemon
    // counts every call it gave up on as a timeout.
    const timeouts = seriesValue(metrics, 'push_auth_calls_total{outcome="timeout"}');
    let unexplained = 0;
    const extraCalls = [];
    for (let n = 1; n <= USERS; n++) {
      const tally = perSid.get(sidOf(n));
      assert.ok(tally, `the site was never asked about ${sidOf(n)}`);
      const extra = tally.calls - (1 + tally.errors + tally.abandoned);
      if (extra > 0) {
        unexplained += extra;
        extraCalls.push(`${sidOf(n)}: ${tally.calls} calls for ${tally.errors} errors answered and ${tally.abandoned} calls abandoned: ${tally.log.join(', ')}`);
      }
    }
    assert.ok(unexplained <= timeouts, `${unexplained} calls more than once per cookie, and only ${timeouts} timeouts:\n${extraCalls.join('\n')}`);
    assert.ok(mostWorking <= SITE_WORKERS);
    // The storm was real: the site could not answer everyone at connect.
    assert.ok(retries > 0, 'no connection needed a background attempt; the storm did not overload the site');
    assert.equal(seriesValue(metrics, 'push_auth_retries_exhausted_total'), 0);
  });
});

/** A backend that answers 500 to every call until `heal()`, then normally. */
async function failingBackend(resources, { answerAfterHealing } = {}) {
  let healed = false;
  const backend = await resources.backend({
    respond(req, res) {
      if (healed && !answerAfterHealing) return false;
      if (healed) return answerAfterHealing(req, res);
      res.writeHead(500, { 'content-type': 'text/html' });
      res.end('<h1>Internal Server Error</h1>');
      return true;
    },
  });
  backend.heal = () => { healed = true; };
  return backend;
}

describe('a connection the site could not identify at connect', () => {
  const resources = new Resources();
  const clients = new ClientPool();
  afterEach(async () => {
    clients.closeAll();
    await resources.release();
  });

  test('is a guest meanwhile, and is identified by a later attempt after a 5xx', async () => {
    const backend = await failingBackend(resources);
    const daemon = await resources.daemon({ args: ['--auth-url', backend.url] });
    const tab = await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    assert.equal(backend.callsFor('sid-42').length, 1);
    backend.heal();

    await waitUntil(async () => (await online(daemon.socketPath, '/', '42')).connections === 1, {
      what: 'the connection to be identified as user 42 by a background attempt',
    });
    assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'p' }), 1);
    assert.equal(await tab.waitFor('private'), 'p');
    // Its site rooms too.
    assert.equal(await sendOk(daemon.socketPath, { event: 'group', rooms: ['group:7'], data: 'g' }), 1);
    assert.equal(await tab.waitFor('group'), 'g');

    // Asked once at connect, then by background attempts until one worked.
    const calls = backend.callsFor('sid-42').length;
    const metrics = await scrape(daemon);
    assert.equal(seriesValue(metrics, 'push_auth_retries_total'), calls - 1);
    assert.equal(seriesValue(metrics, 'push_auth_calls_total{outcome="bad_status"}'), calls - 1);
    assert.equal(seriesValue(metrics, 'push_auth_calls_total{outcome="user"}'), 1);
    assert.doesNotMatch(daemon.log, /sid-42/);
  });

  test('keeps being asked about, with backoff, while the site keeps failing', async () => {
    const backend = await failingBackend(resources);
    const daemon = await resources.daemon({ args: ['--auth-url', backend.url] });
    await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    // The first attempts come after about 1 s, then 2 s.
    await waitUntil(() => backend.callsFor('sid-42').length >= 3, {
      what: 'two background attempts',
    });
    assert.ok(seriesValue(await scrape(daemon), 'push_auth_retries_total') >= 2);
    assert.equal((await online(daemon.socketPath, '/', '42')).connections, 0);
  });

  test('is asked about no more once it has closed', async () => {
    const backend = await failingBackend(resources);
    const daemon = await resources.daemon({ args: ['--auth-url', backend.url] });
    const tab = await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    tab.close();
    await waitUntil(async () => (await stats(daemon.socketPath)).connections === 0, { what: 'the daemon to see the close' });
    // The first background attempt would come within 1 s, the second 2 s
    // after: wait past both.
    await sleep(3_500);
    assert.equal(backend.callsFor('sid-42').length, 1);
    assert.equal(seriesValue(await scrape(daemon), 'push_auth_retries_total'), 0);
  });

  describe('with --auth-required', () => {
    // With recovery on (the default), what was published while it waited
    // follows once it is identified (docs/recovery.md); without, it is gone.
    for (const { recovery, expected } of [
      { recovery: [], expected: ['before', 'after'] },
      { recovery: ['--recovery-window', '0'], expected: ['after'] },
    ]) test(`receives nothing until identified, then everything${recovery.length ? ' from then on (recovery off)' : ', what it missed first'}`, async () => {
      const backend = await failingBackend(resources);
      const daemon = await resources.daemon({ args: ['--auth-url', backend.url, '--auth-required', ...recovery] });
      const tab = await clients.connect(daemon, { cookie: cookieFor('sid-42') });
      // Admitted, yet reached by nothing: not by broadcasts, not by its
      // user's messages, not counted as online.
      assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 'before' }), 0);
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'before' }), 0);
      assert.equal((await stats(daemon.socketPath)).namespaces['/'].users_online, 0);

      backend.heal();
      await waitUntil(async () => (await online(daemon.socketPath, '/', '42')).connections === 1, {
        what: 'the connection to be identified as user 42 by a background attempt',
      });
      if (recovery.length === 0) {
        // Its replay runs once it is identified; live messages come after.
        await waitUntil(() => tab.statuses.length === 1, { what: 'the push:recovery status after identification' });
        await waitUntil(() => tab.received('private').length === 1, { what: 'the private message it missed' });
      }
      assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 'after' }), 1);
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'after' }), 1);
      await tab.waitFor('private', (data) => data === 'after');
      assert.deepEqual(tab.received('news'), expected);
      assert.deepEqual(tab.received('private'), expected);
    });

    test('is disconnected when the site then says guest', async () => {
      const backend = await failingBackend(resources, {
        answerAfterHealing(req, res) {
          res.writeHead(401);
          res.end();
          return true;
        },
      });
      const daemon = await resources.daemon({ args: ['--auth-url', backend.url, '--auth-required'] });
      const tab = await clients.connect(daemon, { cookie: cookieFor('sid-42') });
      const disconnected = new Promise((resolve) => tab.socket.once('disconnect', resolve));
      backend.heal();
      assert.equal(await disconnected, 'io server disconnect');
      await waitUntil(async () => (await stats(daemon.socketPath)).connections === 0, { what: 'the daemon to drop it' });
      const metrics = await scrape(daemon);
      assert.equal(seriesValue(metrics, 'push_connections_refused_total{reason="unauthorized"}'), 1);
    });
  });
});

// Identity through the site's auth URL: what is forwarded, the cache,
// --auth-required, and a backend that is dead, slow or misbehaving.
//
// Documented behaviour: 200 {"user_id"} joins the user; 401/403 is a guest
// (refused with "unauthorized" under --auth-required); after a timeout, 5xx,
// redirect or garbage answer the connection is admitted with a logged
// warning and the site is asked again in the background (a guest meanwhile;
// under --auth-required it receives nothing meanwhile); no cookie is a guest
// without a call. Answers are cached per namespace and cookie; failures are
// not. storm.test.mjs covers the background attempts themselves.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool, TRANSPORTS } from './support/clients.mjs';
import { freePort, startDaemon } from './support/daemon.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { online, publisherFor, sendOk, stats } from './support/publish.mjs';
import { Resources } from './support/resources.mjs';
import { sleep, waitUntil } from './support/wait.mjs';

describe('what the daemon sends to the auth URL', () => {
  const resources = new Resources();
  const clients = new ClientPool();
  afterEach(async () => {
    clients.closeAll();
    await resources.release();
  });

  for (const transport of TRANSPORTS) {
    test(`the Cookie header unchanged, X-Forwarded-For and X-Push-Namespace (${transport})`, async () => {
      const backend = await resources.backend();
      const daemon = await resources.daemon({ args: ['--auth-url', backend.url, '--namespace', '/chat'] });
      const cookie = 'sid=sid-42; theme=dark; weird="a b,c"; empty=';
      await clients.connect(daemon, { transport, namespace: '/chat', cookie });
      assert.equal(backend.calls.length, 1);
      const [call] = backend.calls;
      assert.equal(call.method, 'GET');
      assert.equal(call.url, '/push/auth');
      assert.equal(call.cookie, cookie);
      assert.equal(call.namespace, '/chat');
      assert.equal(call.forwardedFor, '127.0.0.1');
    });
  }

  test('an X-Forwarded-For from a proxy in front is kept, with the peer appended', async () => {
    const backend = await resources.backend();
    const daemon = await resources.daemon({ args: ['--auth-url', backend.url] });
    await clients.connect(daemon, { cookie: cookieFor('sid-42'), headers: { 'x-forwarded-for': '203.0.113.7' } });
    assert.equal(backend.calls.length, 1);
    assert.equal(backend.calls[0].forwardedFor, '203.0.113.7, 127.0.0.1');
  });

  test('a Forwarded header from a proxy in front reaches the site as X-Forwarded-For, with the peer appended', async () => {
    const backend = await resources.backend();
    const daemon = await resources.daemon({ args: ['--auth-url', backend.url] });
    const forwarded = 'for=198.51.100.1, for="[2001:db8::7]:4711";proto=https';
    await clients.connect(daemon, { cookie: cookieFor('sid-42'), headers: { forwarded } });
    assert.equal(backend.calls.length, 1);
    assert.equal(backend.calls[0].forwardedFor, '198.51.100.1, 2001:db8::7, 127.0.0.1');
  });

  for (const transport of TRANSPORTS) {
    test(`a connection without cookies is a guest, and the backend is not asked (${transport})`, async () => {
      const backend = await resources.backend();
      const daemon = await resources.daemon({ args: ['--auth-url', backend.url] });
      const anonymous = await clients.connect(daemon, { transport });
      assert.equal(backend.calls.length, 0);
      assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 1 }), 1);
      assert.equal(await anonymous.waitFor('news'), 1);
      assert.equal((await stats(daemon.socketPath)).auth.calls, 0);
    });
  }
});

describe('the auth cache', () => {
  const resources = new Resources();
  const clients = new ClientPool();
  afterEach(async () => {
    clients.closeAll();
    await resources.release();
  });

  for (const transport of TRANSPORTS) {
    test(`a second connection with the same cookie makes no backend call (${transport})`, async () => {
      const backend = await resources.backend();
      const daemon = await resources.daemon({ args: ['--auth-url', backend.url] });
      const tab1 = await clients.connect(daemon, { transport, cookie: cookieFor('sid-42') });
      assert.equal(backend.calls.length, 1);
      const tab2 = await clients.connect(daemon, { transport, cookie: cookieFor('sid-42') });
      assert.equal(backend.calls.length, 1, 'the second tab must be identified from the cache');
      // ...and identified correctly from it.
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'both' }), 2);
      assert.equal(await tab1.waitFor('private'), 'both');
      assert.equal(await tab2.waitFor('private'), 'both');
      const { auth } = await stats(daemon.socketPath);
      assert.equal(auth.calls, 1);
      assert.equal(auth.cache_hits, 1);

      // Another cookie is another question.
      await clients.connect(daemon, { transport, cookie: cookieFor('sid-7') });
      assert.equal(backend.calls.length, 2);
    });
  }

  test('guests (401) are cached too', async () => {
    const backend = await resources.backend();
    const daemon = await resources.daemon({ args: ['--auth-url', backend.url] });
    await clients.connect(daemon, { cookie: cookieFor('sid-nobody') });
    await clients.connect(daemon, { cookie: cookieFor('sid-nobody') });
    assert.equal(backend.calls.length, 1);
    assert.equal((await stats(daemon.socketPath)).auth.cache_hits, 1);
  });

  test('the cache is per namespace', async () => {
    const backend = await resources.backend();
    const daemon = await resources.daemon({ args: ['--auth-url', backend.url, '--namespace', '/chat'] });
    await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    await clients.connect(daemon, { namespace: '/chat', cookie: cookieFor('sid-42') });
    assert.deepEqual(backend.calls.map((call) => call.namespace), ['/', '/chat']);
  });

  test('--auth-cache-ttl 0 asks the backend at every connect', async () => {
    const backend = await resources.backend();
    const daemon = await resources.daemon({ args: ['--auth-url', backend.url, '--auth-cache-ttl', '0'] });
    await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    assert.equal(backend.calls.length, 2);
  });

  for (const ttl of ['30s', '0']) {
    test(`connects with the same cookie at the same moment share one call (--auth-cache-ttl ${ttl})`, async () => {
      const backend = await resources.backend({ hold: true });
      const daemon = await resources.daemon({ args: ['--auth-url', backend.url, '--auth-cache-ttl', ttl, '--auth-timeout', '10s'] });
      const tabs = Array.from({ length: 5 }, () => clients.connect(daemon, { cookie: cookieFor('sid-42') }));
      await waitUntil(() => backend.calls.length === 1, { what: 'the daemon to ask the backend' });
      // Every tab has its engine.io session, and so has sent its namespace
      // connect, before the answer is released.
      await waitUntil(() => clients.clients.every((tab) => tab.socket.io.engine?.readyState === 'open'), {
        what: 'every tab to open its session',
      });
      await sleep(300);
      backend.release();
      const connected = await Promise.all(tabs);
      assert.equal(backend.calls.length, 1);
      assert.equal(seriesValue(await scrape(daemon), 'push_auth_merged_total'), 4);
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'all' }), 5);
      for (const tab of connected) assert.equal(await tab.waitFor('private'), 'all');
    });
  }

  test('an answer is asked again once its TTL has passed', async () => {
    const backend = await resources.backend();
    const daemon = await resources.daemon({ args: ['--auth-url', backend.url, '--auth-cache-ttl', '300ms'] });
    await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    assert.equal(backend.calls.length, 1);
    await sleep(600); // past the TTL, whatever the scheduling
    await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    assert.equal(backend.calls.length, 2);
  });
});

describe('--auth-required', () => {
  let backend;
  let daemon;
  const clients = new ClientPool();
  before(async () => {
    backend = await startAuthBackend({
      respond(req, res) {
        if (!/sid=sid-forbidden/.test(req.headers.cookie ?? '')) return false;
        res.writeHead(403);
        res.end();
        return true;
      },
    });
    daemon = await startDaemon({ args: ['--auth-url', backend.url, '--auth-required'] });
  });
  afterEach(() => clients.closeAllAndSettle(daemon));
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
    await backend?.close();
  });

  for (const transport of TRANSPORTS) {
    test(`refuses guests with "unauthorized" and admits users (${transport})`, async () => {
      const noCookie = await clients.refused(daemon, { transport });
      assert.equal(noCookie.message, 'unauthorized');
      const loggedOut = await clients.refused(daemon, { transport, cookie: cookieFor('sid-nobody') });
      assert.equal(loggedOut.message, 'unauthorized');
      const forbidden = await clients.refused(daemon, { transport, cookie: cookieFor('sid-forbidden') });
      assert.equal(forbidden.message, 'unauthorized');

      const user = await clients.connect(daemon, { transport, cookie: cookieFor('sid-42') });
      // Only the admitted user counts as a connection.
      assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 'n' }), 1);
      assert.equal(await user.waitFor('news'), 'n');
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'p' }), 1);
      assert.equal(await user.waitFor('private'), 'p');
    });
  }

  test('a refused guest is counted as refused "unauthorized"', async () => {
    const count = (text) => seriesValue(text, 'push_connections_refused_total{reason="unauthorized"}');
    const before = count(await scrape(daemon));
    await clients.refused(daemon, {});
    assert.equal(count(await scrape(daemon)), before + 1);
  });
});

/** A backend that misbehaves, and the documented outcome for it. */
const BROKEN_BACKENDS = {
  dead: {
    what: 'a dead backend (nothing listening)',
    async start(resources) {
      const port = await freePort();
      return { url: `http://127.0.0.1:${port}/push/auth`, calls: null };
    },
    outcome: 'unreachable',
  },
  slow: {
    what: 'a slow backend (answers after --auth-timeout)',
    async start(resources) {
      return resources.backend({ delayMs: 5_000 });
    },
    outcome: 'timeout',
  },
  error: {
    what: 'a backend answering 500',
    async start(resources) {
      return resources.backend({
        respond(req, res) {
          res.writeHead(500, { 'content-type': 'text/html' });
          res.end('<h1>Internal Server Error</h1>');
          return true;
        },
      });
    },
    outcome: 'bad_status',
  },
  stalled: {
    what: 'a backend that sends its headers, then stalls the body',
    async start(resources) {
      return resources.backend({
        respond(req, res) {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '64' });
          res.write('{"user_id": "4');
          return true; // and never finishes
        },
      });
    },
    outcome: 'bad_body',
  },
  garbage: {
    what: 'a backend answering 200 with garbage',
    async start(resources) {
      return resources.backend({
        respond(req, res) {
          res.writeHead(200, { 'content-type': 'text/html' });
          res.end('<html>please log in</html>');
          return true;
        },
      });
    },
    outcome: 'bad_body',
  },
};

for (const [name, broken] of Object.entries(BROKEN_BACKENDS)) {
  describe(`${broken.what}`, () => {
    const resources = new Resources();
    const clients = new ClientPool();
    afterEach(async () => {
      clients.closeAll();
      await resources.release();
    });
    const authArgs = (backend) => ['--auth-url', backend.url, '--auth-timeout', '300ms'];

    for (const transport of TRANSPORTS) {
      test(`leaves the daemon serving; the connection is a guest, and the site is asked again (${transport})`, async () => {
        const backend = await broken.start(resources);
        const daemon = await resources.daemon({ args: authArgs(backend) });
        const visitor = await clients.connect(daemon, { transport, cookie: cookieFor('sid-42') });
        if (backend.calls) assert.ok(backend.calls.length >= 1);

        // A guest: broadcasts arrive, the private stream of 42 does not.
        assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'p' }), 0);
        assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 'n' }), 1);
        assert.equal(await visitor.waitFor('news'), 'n');
        assert.deepEqual(visitor.received('private'), []);
        assert.deepEqual(await online(daemon.socketPath, '/', '42'), { namespace: '/', user: '42', online: false, connections: 0, partial: false });

        // Logged clearly, counted, and not cached: a background attempt
        // asks the site again (and fails again).
        await waitUntil(() => /WARN.*auth URL could not identify a connection/.test(daemon.log), {
          what: 'a warning about the auth URL in the log',
        });
        const outcome = `push_auth_calls_total{outcome="${broken.outcome}"}`;
        await waitUntil(async () => seriesValue(await scrape(daemon), outcome) >= 2, {
          what: `a background attempt counted as ${broken.outcome}`,
        });
        if (backend.calls) assert.ok(backend.calls.length >= 2);
        const metrics = await scrape(daemon);
        assert.ok(seriesValue(metrics, 'push_auth_retries_total') >= 1);
        const { auth } = await stats(daemon.socketPath);
        assert.equal(auth.failures, auth.calls);
        assert.equal(auth.cache_hits, 0);
        assert.equal((await online(daemon.socketPath, '/', '42')).connections, 0);

        // Cookies never reach the log.
        assert.doesNotMatch(daemon.log, /sid-42/);
        const health = await fetch(`${daemon.url}/healthz`);
        assert.equal(health.status, 200);
      });

      test(`with --auth-required the connection is admitted but receives nothing (${transport})`, async () => {
        const backend = await broken.start(resources);
        const daemon = await resources.daemon({ args: [...authArgs(backend), '--auth-required'] });
        const visitor = await clients.connect(daemon, { transport, cookie: cookieFor('sid-42') });
        // Still serving: a guest without cookies is refused as unauthorized,
        // and publishing works, but reaches nobody.
        const guest = await clients.refused(daemon, { transport });
        assert.equal(guest.message, 'unauthorized');
        assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 'n' }), 0);
        assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'p' }), 0);
        await waitUntil(async () => seriesValue(await scrape(daemon), 'push_auth_retries_total') >= 1, {
          what: 'a background attempt',
        });
        assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 'n' }), 0);
        assert.deepEqual(visitor.events, []);
        const metrics = await scrape(daemon);
        assert.equal(seriesValue(metrics, 'push_connections_refused_total{reason="auth_unavailable"}'), 0);
        assert.equal((await stats(daemon.socketPath)).connections, 1);
      });
    }
  });
}

describe('the background attempts\' settings', () => {
  const resources = new Resources();
  const clients = new ClientPool();
  afterEach(async () => {
    clients.closeAll();
    await resources.release();
  });

  test('--auth-retry-attempts and --auth-retry-backoff-max: two attempts a second apart, then given up (the defaults take minutes)', async () => {
    const backend = await resources.backend({
      respond(req, res) {
        res.writeHead(503);
        res.end();
        return true;
      },
    });
    const daemon = await resources.daemon({
      args: ['--auth-url', backend.url, '--auth-retry-attempts', '2', '--auth-retry-backoff-max', '1s', '--auth-required'],
    });
    await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    await waitUntil(async () => seriesValue(await scrape(daemon), 'push_auth_retries_exhausted_total') === 1, {
      what: 'the attempts to run out',
    });
    const metrics = await scrape(daemon);
    assert.equal(seriesValue(metrics, 'push_auth_retries_total'), 2);
    assert.equal(seriesValue(metrics, 'push_connections_refused_total{reason="auth_unavailable"}'), 1, 'disconnected under --auth-required');
    assert.match(daemon.log, /could not identify a connection after every retry.*attempts=2/);
  });

  test('--auth-retry-slot-wait: a background attempt queues for a call slot this long, then counts as failed', async () => {
    // One call slot, and a site that takes 2.5 s to answer each call (user
    // 42: 503). Once 42's connect has failed, user 9's connect holds the
    // slot for 2.5 s: 42's background attempt, due within a second, finds
    // it taken.
    const backend = await resources.backend({
      respond(req, res) {
        if ((req.headers.cookie ?? '').includes('sid=sid-42')) {
          res.writeHead(503);
          res.end();
          return true;
        }
        return false;
      },
      delayMs: 2_500,
    });
    const daemon = await resources.daemon({
      args: ['--auth-url', backend.url, '--auth-timeout', '5s', '--auth-max-concurrency', '1',
        '--auth-retry-slot-wait', '200ms', '--auth-retry-attempts', '1'],
    });
    const asked42 = () => backend.calls.filter((call) => call.cookie.includes('sid=sid-42')).length;
    await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    const nine = clients.connect(daemon, { cookie: cookieFor('sid-9') });
    await waitUntil(async () => seriesValue(await scrape(daemon), 'push_auth_retries_exhausted_total') === 1, {
      what: 'the one background attempt to give up',
    });
    // It gave up waiting for the slot, without asking the site: 42 was
    // asked once, at its connect. With the default (60s) the attempt would
    // have waited for user 9's call to end and asked the site again.
    assert.equal(asked42(), 1);
    await nine;
    assert.equal(asked42(), 1);
  });
});

describe('the auth backend cannot send cookies elsewhere', () => {
  const resources = new Resources();
  const clients = new ClientPool();
  afterEach(async () => {
    clients.closeAll();
    await resources.release();
  });

  for (const required of [false, true]) {
    test(`a redirect is not followed${required ? ' (auth required: receives nothing)' : ' (guest)'}`, async () => {
      const elsewhere = await resources.backend();
      const backend = await resources.backend({
        respond(req, res) {
          res.writeHead(302, { location: elsewhere.url });
          res.end();
          return true;
        },
      });
      const daemon = await resources.daemon({
        args: ['--auth-url', backend.url, ...(required ? ['--auth-required'] : [])],
      });
      // Admitted without an identity either way (and asked about again).
      await clients.connect(daemon, { cookie: cookieFor('sid-42') });
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 'p' }), 0);
      assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 'n' }), required ? 0 : 1);
      assert.ok(backend.calls.length >= 1);
      assert.equal(elsewhere.calls.length, 0, 'the cookie must not follow the redirect');
      // The refusal can reach the client before the log line reaches us.
      await waitUntil(() => /WARN.*302/.test(daemon.log), { what: () => `a warning naming the 302 in:\n${daemon.logTail()}` });
    });
  }

  test('{"user_id": null} is a guest', async () => {
    const backend = await resources.backend({ users: { 'sid-42': { user_id: null } } });
    const daemon = await resources.daemon({ args: ['--auth-url', backend.url] });
    await clients.connect(daemon, { cookie: cookieFor('sid-42') });
    assert.equal(backend.calls.length, 1);
    const { auth } = await stats(daemon.socketPath);
    assert.equal(auth.failures, 0);
    assert.equal((await stats(daemon.socketPath)).namespaces['/'].users_online, 0);
  });
});

describe('the publish path does not wait for the auth backend', () => {
  test('a publish is answered while a connect waits for the backend', async () => {
    const backend = await startAuthBackend({ hold: true });
    const daemon = await startDaemon({ args: ['--auth-url', backend.url, '--auth-timeout', '60s'] });
    const clients = new ClientPool();
    try {
      const guest = await clients.connect(daemon, {});
      const pending = clients.connect(daemon, { cookie: cookieFor('sid-42') });
      await waitUntil(() => backend.calls.length === 1, { what: 'the daemon to ask the backend' });
      // The backend holds its answer; publishing must not wait for it, nor
      // must other connections.
      assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 1 }), 1);
      assert.equal(await guest.waitFor('news'), 1);
      const laterGuest = await clients.connect(daemon, {});
      assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 2 }), 2);
      assert.equal(await laterGuest.waitFor('news'), 2);
      backend.release();
      const user = await pending;
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 2 }), 1);
      assert.equal(await user.waitFor('private'), 2);
    } finally {
      clients.closeAll();
      await daemon.cleanup();
      await backend.close();
    }
  });
});

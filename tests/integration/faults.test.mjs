// Faults around the daemon:
// - the auth backend dies in the middle of a connect storm and comes back:
//   the circuit breaker spares it the storm, and the daemon identifies the
//   connections it could not identify by itself once it is back;
// - the daemon is killed with SIGKILL: a PHP publish fails fast with
//   PushException, and succeeds again after a restart;
// - the socket file is deleted under a running daemon: publishers already
//   connected keep working, new ones are told the daemon is unreachable,
//   browsers notice nothing, and a restart recreates the file
//   (docs/security.md documents this).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { afterEach, describe, test } from 'node:test';

import { cookieFor, USERS } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { cleanEnv, freePort, repoRoot, startDaemon, tempDir } from './support/daemon.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { Kind, publisherFor, RawConnection, request, send, sendOk, stats } from './support/publish.mjs';
import { sleep, waitUntil, withGuard } from './support/wait.mjs';

const cleanups = [];
const clients = new ClientPool();
afterEach(async () => {
  clients.closeAll();
  while (cleanups.length > 0) await cleanups.pop()();
});

/** The cookie of storm user `n`, whom the site below knows as user `s<n>`. */
const stormCookie = (n) => cookieFor(`sid-storm-${n}`);

/**
 * The site's auth endpoint on a fixed port, so that it can be killed and
 * started again where the daemon expects it. Answers as auth-backend.mjs
 * does (a known sid is a user, anything else 401), and knows every storm
 * user.
 */
async function siteOn(port, { delayMs = 0 } = {}) {
  let calls = 0;
  const server = http.createServer((req, res) => {
    calls++;
    const sid = /(?:^|;\s*)sid=([^;]*)/.exec(req.headers.cookie ?? '')?.[1];
    const storm = /^sid-storm-(\d+)$/.exec(sid ?? '');
    const user = storm ? { user_id: `s${storm[1]}` } : USERS[sid];
    setTimeout(() => {
      if (res.destroyed) return;
      res.writeHead(user ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(user ?? { error: 'not logged in' }));
    }, delayMs);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    get calls() { return calls; },
    /** Dies like a crashed PHP-FPM pool: the port stops answering at once. */
    async kill() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const authOutcome = (text, outcome) => seriesValue(text, `push_auth_calls_total{outcome="${outcome}"}`);
/** Calls that reached a dead site, or waited for it in vain. */
const failures = (text) => authOutcome(text, 'unreachable') + authOutcome(text, 'timeout');

describe('the auth backend killed in the middle of a connect storm', () => {
  test('the breaker spares it the storm, and the daemon identifies everyone by itself when it is back', async (t) => {
    const port = await freePort();
    let site = await siteOn(port);
    const daemon = await startDaemon({
      logLevel: 'info',
      args: ['--auth-url', `http://127.0.0.1:${port}/push/auth`, '--auth-required', '--auth-cache-ttl', '0', '--auth-timeout', '1s'],
    });
    cleanups.push(() => daemon.cleanup());
    cleanups.push(() => site?.kill());
    const storm = (from, count) => Promise.all(Array.from({ length: count }, (_, i) =>
      clients.connect(daemon, { cookie: stormCookie(from + i), name: `storm user ${from + i}` })));
    const usersOnline = async () => (await stats(daemon.socketPath)).namespaces['/'].users_online;

    // The storm starts while the site is up...
    const first = storm(1, 100);
    await waitUntil(() => site.calls >= 20, { what: 'the storm to reach the site' });
    // ...and the site dies in the middle of it. Every connect is admitted
    // all the same (--auth-required: the unidentified ones receive nothing).
    await site.kill();
    site = null;
    const firstTabs = await first;
    const identifiedBefore = await usersOnline();
    assert.ok(identifiedBefore < 100, 'connects after the site died are not identified');
    assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 'down' }), identifiedBefore);

    // While it is down, a second storm is admitted without asking it.
    const before = await scrape(daemon);
    const failedBefore = failures(before);
    const skippedBefore = authOutcome(before, 'circuit_open');
    const secondTabs = await storm(101, 100);
    const text = await scrape(daemon);
    t.diagnostic(`the site died in a storm of 100: ${failedBefore} calls failed; `
      + `a second storm of 100 while it was down made ${failures(text) - failedBefore} calls`);
    assert.equal(failures(text), failedBefore, 'no call reached the dead site while the breaker was open');
    assert.ok(authOutcome(text, 'circuit_open') - skippedBefore >= 100, 'every connect of the second storm was skipped');
    assert.match(daemon.log, /WARN.*auth URL failed 5 times in a row; skipping it/);
    assert.equal(await usersOnline(), identifiedBefore);

    // The site comes back. Nobody restarts the daemon and no browser
    // reconnects: after the breaker's cool-down (5 s) one trial call closes
    // it, and the background attempts identify every connection.
    site = await siteOn(port);
    const restarted = Date.now();
    await waitUntil(async () => (await usersOnline()) === 200, {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: 'every connection of both storms to be identified',
    });
    t.diagnostic(`all identified ${((Date.now() - restarted) / 1000).toFixed(1)} s after the site came back`);
    assert.equal(await sendOk(daemon.socketPath, { event: 'news', data: 'back' }), 200);
    assert.equal(await sendOk(daemon.socketPath, { event: 'dm', users: ['s150'], data: 'back' }), 1);
    assert.equal(await secondTabs[49].waitFor('dm'), 'back');
    assert.deepEqual(secondTabs[49].received('news'), ['back'], 'nothing reached it before it was identified');
    assert.equal(await firstTabs[99].waitFor('news', (data) => data === 'back'), 'back');
  });

  test('connects waiting for a call slot when the breaker opens do not call the dead site', async (t) => {
    // Connects queued for one of the auth_max_concurrency (32) call slots
    // ask the breaker again once they get a slot, so after the site dies at
    // most the calls in flight plus FAILURES_TO_OPEN (5) reach it.
    const port = await freePort();
    let site = await siteOn(port, { delayMs: 300 }); // slow: connects queue for the 32 slots
    cleanups.push(() => site?.kill());
    const daemon = await startDaemon({
      logLevel: 'info',
      args: ['--auth-url', `http://127.0.0.1:${port}/push/auth`, '--auth-required', '--auth-cache-ttl', '0'],
    });
    cleanups.push(() => daemon.cleanup());
    // Distinct cookies: connects with the same cookie would share one call.
    const storm = Promise.allSettled(Array.from({ length: 100 }, (_, i) =>
      clients.connect(daemon, { cookie: stormCookie(i), name: `storm ${i}` })));
    await waitUntil(() => site.calls >= 32, { what: 'the call slots to fill' });
    await site.kill();
    site = null;
    await storm;
    const text = await scrape(daemon);
    t.diagnostic(`a slow site died under 100 simultaneous connects: ${failures(text)} calls failed, ${authOutcome(text, 'circuit_open')} skipped`);
    assert.ok(failures(text) <= 32 + 5, `${failures(text)} calls reached the dead site`);
  });
});

// ---- the PHP extension -------------------------------------------------------

const extension = process.env.PUSH_EXTENSION ?? path.join(repoRoot, 'target/debug/libpush.so');
const php = spawnSync('php', ['-n', '-d', `extension=${extension}`, '-r', 'echo extension_loaded("push") ? "yes" : "no";'], { encoding: 'utf8' });
const phpSkip = php.stdout === 'yes' ? false : `needs php and the built extension (${extension}; cargo build -p php-ext)`;

/**
 * A PHP process that keeps one PushClient, as a php-fpm worker does, and
 * publishes on request: each `send(event)` resolves with
 * { ok, recipients } or { ok: false, class, code, message }, plus the
 * milliseconds the call took.
 */
class PhpPublisher {
  static start(socketPath) {
    const script = `
      $client = new PushClient($argv[1]);
      while (($line = fgets(STDIN)) !== false) {
        $event = trim($line);
        $started = hrtime(true);
        try {
          $n = $client->sendMsg($event, ['event' => $event]);
          $out = ['ok' => true, 'recipients' => $n];
        } catch (Throwable $e) {
          $out = ['ok' => false, 'class' => get_class($e), 'code' => $e->getCode(), 'message' => $e->getMessage()];
        }
        $out['ms'] = (hrtime(true) - $started) / 1e6;
        echo json_encode($out), "\\n";
      }`;
    const child = spawn('php', ['-n', '-d', `extension=${extension}`, '-d', 'push.timeout_ms=2000', '-r', script, socketPath], {
      env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new PhpPublisher(child);
  }

  constructor(child) {
    this.child = child;
    this.stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d) => { this.stderr += d; });
    this.lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }

  async send(event) {
    this.child.stdin.write(`${event}\n`);
    const { value, done } = await withGuard(this.lines.next(), `php to publish ${event}`);
    assert.ok(!done, `php exited: ${this.stderr}`);
    return JSON.parse(value);
  }

  stop() {
    this.child.stdin.end();
    this.child.kill();
  }
}

describe('the daemon killed with SIGKILL', { skip: phpSkip }, () => {
  test('a PHP publish fails fast with PushException, and succeeds after a restart', async (t) => {
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const socketPath = path.join(dir, 'push.sock');
    let daemon = await startDaemon({ dir, socketPath });
    cleanups.push(() => daemon.cleanup());
    const browser = await clients.connect(daemon);
    const worker = PhpPublisher.start(socketPath);
    cleanups.push(() => worker.stop());

    assert.deepEqual(await worker.send('before').then(({ ok, recipients }) => ({ ok, recipients })), { ok: true, recipients: 1 });
    await browser.waitFor('before');

    await daemon.stop({ signal: 'SIGKILL' });
    assert.ok(fs.existsSync(socketPath), 'SIGKILL leaves the socket file behind');
    // The kept connection, and a fresh PHP process, both fail at once.
    const kept = await worker.send('while-dead');
    const fresh = PhpPublisher.start(socketPath);
    const freshResult = await fresh.send('while-dead').finally(() => fresh.stop());
    t.diagnostic(`while the daemon is dead: kept connection failed in ${kept.ms.toFixed(1)} ms, a new one in ${freshResult.ms.toFixed(1)} ms`);
    for (const [what, result] of [['kept connection', kept], ['fresh process', freshResult]]) {
      assert.equal(result.ok, false, what);
      assert.equal(result.class, 'PushException', `${what}: ${JSON.stringify(result)}`);
      assert.equal(result.code, 1, `${what}: PushException::UNREACHABLE, got ${JSON.stringify(result)}`);
      assert.ok(result.ms < 500, `${what} took ${result.ms} ms; it must fail fast, not wait for push.timeout_ms`);
    }

    // Restarted on the same path, the stale file is replaced; the same PHP
    // process publishes again without being told anything.
    daemon = await startDaemon({ dir, socketPath });
    cleanups.push(() => daemon.cleanup());
    const after = await clients.connect(daemon);
    const again = await worker.send('after-restart');
    assert.equal(again.ok, true, JSON.stringify(again));
    assert.equal(again.recipients, 1);
    await after.waitFor('after-restart');
  });
});

describe('the socket file deleted under a running daemon', () => {
  test('connected publishers keep working, new ones get "unreachable", browsers notice nothing, a restart recreates it', async () => {
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const socketPath = path.join(dir, 'push.sock');
    let daemon = await startDaemon({ dir, socketPath });
    cleanups.push(() => daemon.cleanup());
    const browser = await clients.connect(daemon);
    const kept = await RawConnection.open(socketPath);
    cleanups.push(() => kept.destroy());
    await kept.handshake();
    const worker = phpSkip ? null : PhpPublisher.start(socketPath);
    if (worker) {
      cleanups.push(() => worker.stop());
      assert.equal((await worker.send('php-before')).ok, true);
    }

    fs.unlinkSync(socketPath);

    // A publisher that was connected keeps its connection.
    const reply = await kept.call(request.publish(2, { event: 'kept', data: 'still here' }));
    assert.deepEqual([reply.kind, reply.recipients], [Kind.PUBLISHED, 1]);
    assert.equal(await browser.waitFor('kept'), 'still here');
    if (worker) {
      const php = await worker.send('php-kept');
      assert.deepEqual([php.ok, php.recipients], [true, 1], JSON.stringify(php));
    }
    // A new one cannot find the daemon.
    const fresh = await send(socketPath, { event: 'fresh', data: 1 });
    assert.equal(fresh.code, 1);
    assert.match(fresh.stderr, /cannot connect to push-core.*No such file or directory/);
    // Browsers and HTTP are untouched.
    assert.equal((await fetch(`${daemon.url}/healthz`)).status, 200);
    assert.ok(browser.socket.connected);
    assert.ok(daemon.running);

    // A clean stop leaves the path alone (the file is not ours any more)
    // and exits 0; a restart creates the socket again.
    assert.deepEqual(await daemon.stop(), { code: 0, signal: null });
    daemon = await startDaemon({ dir, socketPath });
    cleanups.push(() => daemon.cleanup());
    const after = await clients.connect(daemon);
    assert.equal(await sendOk(socketPath, { event: 'after', data: 1 }), 1);
    await clients.flush(publisherFor(daemon), [after]);
    assert.deepEqual(after.received('after'), [1]);
  });
});

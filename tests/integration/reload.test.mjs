// Reloading the configuration with SIGHUP: live settings change without
// dropping a connection, restart-only ones are reported, a bad file is
// refused whole, and the log level follows.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { startDaemon, tempDir } from './support/daemon.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { sendOk } from './support/publish.mjs';
import { waitUntil } from './support/wait.mjs';

const OLD_ORIGIN = 'https://old.example';
const NEW_ORIGIN = 'https://new.example';

/** Clients kept connected across the reload. */
const KEPT = 100;

/** How many reloads ended with `result` (applied or refused). */
async function reloads(daemon, result) {
  return seriesValue(await scrape(daemon), `push_config_reloads_total{result="${result}"}`);
}

/** Sends SIGHUP and waits until the daemon counts a reload with `result`. */
async function reload(daemon, result) {
  const before = await reloads(daemon, result);
  daemon.child.kill('SIGHUP');
  await waitUntil(async () => (await reloads(daemon, result)) > before, {
    what: () => `a reload counted as ${result}\n${daemon.logTail()}`,
  });
}

describe('reloading with SIGHUP', () => {
  let dir;
  let file;
  let daemon;
  const clients = new ClientPool();
  const kept = [];
  let dropped = 0;

  before(async () => {
    dir = tempDir();
    file = path.join(dir, 'push-core.toml');
    fs.writeFileSync(file, `allowed_origins = ["${OLD_ORIGIN}"]\n`);
    daemon = await startDaemon({ dir, args: ['--config', file] });
    for (let batch = 0; batch < KEPT / 20; batch++) {
      kept.push(...await Promise.all(Array.from({ length: 20 }, () => clients.connect(daemon, { origin: OLD_ORIGIN }))));
    }
    for (const client of kept) client.socket.on('disconnect', () => { dropped += 1; });
  });
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('changes the allowed origins while 100 clients stay connected', async () => {
    assert.ok((await clients.refused(daemon, { origin: NEW_ORIGIN })).message.length > 0, 'not allowed yet');

    fs.writeFileSync(file, `allowed_origins = ["${NEW_ORIGIN}"]\n`);
    await reload(daemon, 'applied');

    await clients.connect(daemon, { origin: NEW_ORIGIN });
    await clients.refused(daemon, { origin: OLD_ORIGIN });
    await clients.refused(daemon, { origin: OLD_ORIGIN, transport: 'polling' });
    assert.ok(await sendOk(daemon.socketPath, { event: 'after-reload', data: 1 }) >= KEPT + 1);
    await Promise.all(kept.map((client) => client.waitFor('after-reload')));
    assert.equal(dropped, 0, 'no kept client was disconnected');
    assert.ok(kept.every((client) => client.socket.connected));
    assert.match(daemon.log, /configuration reloaded applied=\["allowed_origins"\] needs_restart=\[\]/);
  });

  test('reports a setting that needs a restart, naming it', async () => {
    fs.writeFileSync(file, `allowed_origins = ["${NEW_ORIGIN}"]\nmax_frame_size = "2MiB"\n`);
    await reload(daemon, 'applied');
    assert.match(daemon.log, /the configuration changes max_frame_size, which needs a restart to take effect/);
    assert.match(daemon.log, /needs_restart=\["max_frame_size"\]/);
  });

  for (const [what, text] of [
    ['a bad value', `allowed_origins = ["${OLD_ORIGIN}"]\nmax_connections = "lots"\n`],
    ['a file that is not TOML', `allowed_origins = ["${OLD_ORIGIN}"\n`],
    ['an unknown setting', `allowed_origins = ["${OLD_ORIGIN}"]\nmax_conections = 5\n`],
  ]) {
    test(`refuses ${what} and keeps the running configuration`, async () => {
      const logged = daemon.log.length;
      fs.writeFileSync(file, text);
      await reload(daemon, 'refused');
      assert.match(daemon.log.slice(logged), /configuration reload refused; the running configuration is kept/);
      // The new origins are still in force, not the file's.
      await clients.connect(daemon, { origin: NEW_ORIGIN });
      await clients.refused(daemon, { origin: OLD_ORIGIN });
      assert.equal(dropped, 0);
    });
  }

  test('applies a good file again after a refused one', async () => {
    fs.writeFileSync(file, `allowed_origins = ["${OLD_ORIGIN}", "${NEW_ORIGIN}"]\n`);
    await reload(daemon, 'applied');
    await clients.connect(daemon, { origin: OLD_ORIGIN });
    await clients.connect(daemon, { origin: NEW_ORIGIN });
    assert.equal(dropped, 0);
  });

  test('applies a lower connection limit to new connections only', async () => {
    const open = seriesValue(await scrape(daemon), 'push_connections{namespace="/",transport="websocket",protocol="5"}');
    fs.writeFileSync(file, `max_connections = ${open}\n`);
    await reload(daemon, 'applied');
    const refusal = await clients.refused(daemon, {});
    assert.equal(refusal.message, 'too_many_connections');
    assert.ok(await sendOk(daemon.socketPath, { event: 'still-here', data: 1 }) >= KEPT);
    await Promise.all(kept.map((client) => client.waitFor('still-here')));
    assert.equal(dropped, 0);
  });
});

describe('reloading the log level', () => {
  test('takes effect at once', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'push-core.toml');
    fs.writeFileSync(file, 'log_level = "info"\n');
    const daemon = await startDaemon({ dir, args: ['--config', file], logLevel: null });
    const clients = new ClientPool();
    try {
      await clients.connect(daemon);
      await sendOk(daemon.socketPath, { event: 'x', data: 1 });
      assert.doesNotMatch(daemon.log, / DEBUG /, 'nothing at debug under info');

      fs.writeFileSync(file, 'log_level = "push_core=debug,info"\n');
      await reload(daemon, 'applied');
      await clients.connect(daemon);
      await waitUntil(() => / DEBUG push_core::socketio::connect: connected/.test(daemon.log), {
        what: () => `a debug line after the reload\n${daemon.logTail()}`,
      });
    } finally {
      clients.closeAll();
      await daemon.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('reloading the auth URL', () => {
  test('asks the new site from the next connect, with a fresh cache', async () => {
    const oldSite = await startAuthBackend({ users: { 'sid-1': { user_id: 'old-1' } } });
    const newSite = await startAuthBackend({ users: { 'sid-1': { user_id: 'new-1' } } });
    const dir = tempDir();
    const file = path.join(dir, 'push-core.toml');
    fs.writeFileSync(file, `auth_url = "${oldSite.url}"\n`);
    const daemon = await startDaemon({ dir, args: ['--config', file] });
    const clients = new ClientPool();
    try {
      const before = await clients.connect(daemon, { cookie: cookieFor('sid-1') });
      assert.equal(oldSite.calls.length, 1);

      fs.writeFileSync(file, `auth_url = "${newSite.url}"\nauth_timeout = "3s"\n`);
      await reload(daemon, 'applied');
      assert.match(daemon.log, /applied=\["auth_url", "auth_timeout"\]/);
      const after = await clients.connect(daemon, { cookie: cookieFor('sid-1') });
      assert.equal(newSite.calls.length, 1, 'the new site was asked, not the old cache');
      assert.equal(oldSite.calls.length, 1);

      assert.equal(await sendOk(daemon.socketPath, { event: 'dm', users: ['new-1'], data: 'new' }), 1);
      assert.equal(await sendOk(daemon.socketPath, { event: 'dm', users: ['old-1'], data: 'old' }), 1);
      assert.equal(await after.waitFor('dm'), 'new');
      assert.equal(await before.waitFor('dm'), 'old', 'a connection keeps the identity it had');
    } finally {
      clients.closeAll();
      await daemon.cleanup();
      await oldSite.close();
      await newSite.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

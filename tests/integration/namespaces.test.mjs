// Namespaces: `/` is always served, others only when configured (by flag,
// environment or config file); a client asking for any other namespace
// gets socket.io's connect error, and publishing to one is an error.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';

import { ClientPool, TRANSPORTS } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { send, sendOk } from './support/publish.mjs';

describe('namespaces', () => {
  let daemon;
  const clients = new ClientPool();
  before(async () => {
    daemon = await startDaemon({ args: ['--namespace', '/chat', '--namespace', '/admin/alerts'] });
  });
  afterEach(() => clients.closeAllAndSettle(daemon));
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
  });

  for (const transport of TRANSPORTS) {
    test(`an unknown namespace is refused with "Invalid namespace" (${transport})`, async () => {
      for (const namespace of ['/nowhere', '/Chat', '/chat/sub', '/admin']) {
        const error = await clients.refused(daemon, { transport, namespace });
        assert.equal(error.message, 'Invalid namespace', namespace);
      }
    });

    test(`configured namespaces and / are served (${transport})`, async () => {
      for (const namespace of ['/', '/chat', '/admin/alerts']) {
        const client = await clients.connect(daemon, { transport, namespace });
        assert.equal(await sendOk(daemon.socketPath, { namespace, event: 'hi', data: namespace }), 1);
        assert.equal(await client.waitFor('hi'), namespace);
      }
    });
  }

  test('a refused namespace does not count as a connection', async () => {
    const client = await clients.connect(daemon, { namespace: '/chat' });
    await clients.refused(daemon, { namespace: '/nowhere' });
    assert.equal(await sendOk(daemon.socketPath, { namespace: '/chat', event: 'hi', data: 1 }), 1);
    assert.equal(await client.waitFor('hi'), 1);
  });

  test('publishing to an unknown namespace fails with a message naming it', async () => {
    const result = await send(daemon.socketPath, { namespace: '/nowhere', event: 'hi', data: 1 });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /"\/nowhere" is not served/);
    assert.match(result.stderr, /unknown_namespace/);
  });
});

describe('namespaces from the environment and the config file', () => {
  const daemons = [];
  const clients = new ClientPool();
  after(async () => {
    clients.closeAll();
    for (const daemon of daemons) await daemon.cleanup();
  });

  test('PUSH_CORE_NAMESPACES takes a comma-separated list', async () => {
    const daemon = await startDaemon({ env: { PUSH_CORE_NAMESPACES: '/a,/b' } });
    daemons.push(daemon);
    await clients.connect(daemon, { namespace: '/a' });
    await clients.connect(daemon, { namespace: '/b' });
    assert.equal((await clients.refused(daemon, { namespace: '/c' })).message, 'Invalid namespace');
  });

  test('the config file key namespaces is a list; flags replace it', async () => {
    const daemon = await startDaemon();
    daemons.push(daemon);
    const config = path.join(daemon.dir, 'push.toml');
    fs.writeFileSync(config, 'namespaces = ["/from-file"]\n');
    const fromFile = await startDaemon({ args: ['--config', config] });
    daemons.push(fromFile);
    await clients.connect(fromFile, { namespace: '/from-file' });

    const flagWins = await startDaemon({ args: ['--config', config, '--namespace', '/from-flag'] });
    daemons.push(flagWins);
    await clients.connect(flagWins, { namespace: '/from-flag' });
    assert.equal((await clients.refused(flagWins, { namespace: '/from-file' })).message, 'Invalid namespace');
  });
});

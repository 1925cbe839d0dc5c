// The socket.io client bundle at /socket.io/socket.io.js, where pages
// written for a Node socket.io server load it (docs/old-clients.md): served
// from the file `client_script` names, with an ETag and caching headers, and
// not served at all without it.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, test } from 'node:test';

import { repoRoot, runBinary, startDaemon } from './support/daemon.mjs';

const BUNDLE = path.join(repoRoot, 'tests/node_modules/socket.io-client-v2/dist/socket.io.js');

const cleanups = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()();
});
async function daemonWith(args) {
  const daemon = await startDaemon({ args });
  cleanups.push(() => daemon.cleanup());
  return daemon;
}

test('the bundle is served byte for byte with an ETag, and revalidated with 304', async () => {
  const daemon = await daemonWith(['--client-script', BUNDLE]);
  const url = `${daemon.url}/socket.io/socket.io.js`;
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^application\/javascript/);
  assert.match(response.headers.get('cache-control'), /max-age=\d+/);
  const etag = response.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]+"$/);
  assert.deepEqual(Buffer.from(await response.arrayBuffer()), fs.readFileSync(BUNDLE));

  const again = await fetch(url, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get('etag'), etag);
  assert.equal((await again.arrayBuffer()).byteLength, 0);

  const stale = await fetch(url, { headers: { 'if-none-match': '"something-else"' } });
  assert.equal(stale.status, 200);
  await stale.arrayBuffer();

  // engine.io under /socket.io/ is untouched.
  const handshake = await fetch(`${daemon.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(handshake.status, 200);
  assert.match(await handshake.text(), /"sid"/);
});

test('without client_script nothing is served at that path', async () => {
  const daemon = await daemonWith([]);
  const response = await fetch(`${daemon.url}/socket.io/socket.io.js`);
  assert.notEqual(response.status, 200);
  await response.arrayBuffer();
});

test('a client_script that is not a file stops the daemon at start, naming the key', async () => {
  const result = await runBinary(['serve', '--socket', '/tmp/unused-client-script.sock', '--client-script', '/nonexistent/socket.io.js']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /invalid value for client_script \(--client-script \/ PUSH_CORE_CLIENT_SCRIPT\): \/nonexistent\/socket\.io\.js is not a file/);
});

// Who may publish: the socket file's mode and group (the first gate), and
// the SO_PEERCRED allow-list of user and group ids (the second). A refused
// peer gets ERROR forbidden (9) with request id 0, then a close, and the
// daemon logs a warning naming its uid and gid.
//
// Publishers of other users are played with `setpriv` (util-linux), which
// needs root: the suite is skipped otherwise. Uid/gid 65534 is nobody and
// nogroup on Debian.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { afterEach, describe, test } from 'node:test';

import { ClientPool } from './support/clients.mjs';
import { binary, cleanEnv, startDaemon, tempDir } from './support/daemon.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { ErrorCode, Kind, publisherFor, sendOk } from './support/publish.mjs';
import { withGuard } from './support/wait.mjs';

const NOBODY = { uid: 65534, gid: 65534 };
/** Nobody's uid with a group that owns nothing. */
const STRANGER = { uid: 65534, gid: 12345 };

const canSwitchUser = process.getuid?.() === 0 && fs.existsSync('/usr/bin/setpriv');
const skip = canSwitchUser ? false : 'needs root and setpriv to publish as another user';

/** Runs `command args` as `{uid, gid}` with no supplementary groups. */
function runAs({ uid, gid }, command, args, { timeoutMs = 15_000 } = {}) {
  return withGuard(new Promise((resolve, reject) => {
    const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', command, ...args], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  }), `${command} as uid ${uid}`, timeoutMs);
}

/** `push-core send` of a broadcast, as `who`. */
const sendAs = (who, socketPath, event) =>
  runAs(who, binary, ['send', '--socket', socketPath, '--event', event, JSON.stringify({ from: who.uid })]);

/**
 * Connects as `who` without sending anything and returns the frames the
 * daemon wrote before closing, decoded as ERROR replies (or the connect
 * error code, such as EACCES).
 */
async function rawRefusalAs(who, socketPath) {
  const script = `
    const socket = require('net').createConnection(process.argv[1]);
    let bytes = Buffer.alloc(0);
    socket.on('data', (d) => { bytes = Buffer.concat([bytes, d]); });
    socket.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(0); });
    socket.on('close', () => console.log(JSON.stringify({ hex: bytes.toString('hex') })));`;
  const result = await runAs(who, process.execPath, ['-e', script, socketPath]);
  const answer = JSON.parse(result.stdout);
  if (answer.error) return answer;
  const bytes = Buffer.from(answer.hex, 'hex');
  const frames = [];
  for (let at = 0; at + 4 <= bytes.length;) {
    const len = bytes.readUInt32BE(at);
    const frame = bytes.subarray(at + 4, at + 4 + len);
    frames.push({
      kind: frame.readUInt8(0),
      id: frame.readUInt32BE(1),
      code: frame.readUInt16BE(5),
      message: frame.subarray(9, 9 + frame.readUInt16BE(7)).toString('utf8'),
    });
    at += 4 + len;
  }
  return { frames };
}

const cleanups = [];
const clients = new ClientPool();
afterEach(async () => {
  clients.closeAll();
  while (cleanups.length > 0) await cleanups.pop()();
});

/** A daemon whose socket directory other users may enter. */
async function daemonWith(args) {
  const dir = tempDir();
  fs.chmodSync(dir, 0o755);
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const daemon = await startDaemon({ dir, args, logLevel: 'info' });
  cleanups.push(() => daemon.cleanup());
  return daemon;
}

describe('the publisher allow-list (SO_PEERCRED)', { skip }, () => {
  test('a uid not on --publisher-uid gets ERROR forbidden with id 0, a close and a warning', async () => {
    const daemon = await daemonWith(['--socket-mode', '0666', '--allow-world-writable-socket', '--publisher-uid', '0']);
    const browser = await clients.connect(daemon);

    const refusal = await rawRefusalAs(NOBODY, daemon.socketPath);
    assert.equal(refusal.frames?.length, 1, JSON.stringify(refusal));
    const [error] = refusal.frames;
    assert.deepEqual([error.kind, error.id, error.code], [Kind.ERROR, 0, ErrorCode.FORBIDDEN]);
    assert.match(error.message, /uid 65534 \/ gid 65534 may not publish/);
    assert.match(daemon.log, /WARN.*refused a publisher.*uid 65534 \/ gid 65534/);

    const sent = await sendAs(NOBODY, daemon.socketPath, 'from-nobody');
    assert.equal(sent.code, 1, sent.stderr);
    // Root is on the list.
    assert.equal(await sendOk(daemon.socketPath, { event: 'from-root', data: 1 }), 1);
    await clients.flush(publisherFor(daemon), [browser]);
    assert.deepEqual(browser.received('from-nobody'), []);
    assert.deepEqual(browser.received('from-root'), [1]);
    assert.ok(seriesValue(await scrape(daemon), 'push_protocol_errors_total{code="forbidden"}') >= 2);
  });

  test('a refused publisher using the reference client is told it is forbidden, every time', async () => {
    // The daemon writes its refusal as soon as it accepts the connection,
    // while the client is still writing HELLO; it keeps reading for a
    // moment so that write does not fail with EPIPE before the client has
    // read why it was refused.
    const daemon = await daemonWith(['--socket-mode', '0666', '--allow-world-writable-socket', '--publisher-uid', '0']);
    for (let i = 0; i < 10; i++) {
      const sent = await sendAs(NOBODY, daemon.socketPath, 'from-nobody');
      assert.equal(sent.code, 1);
      assert.match(sent.stderr, /refused.*uid 65534 \/ gid 65534 may not publish/, `attempt ${i + 1}`);
    }
  });

  test('--publisher-gid admits peers by group, and then refuses others, root included', async () => {
    const daemon = await daemonWith(['--socket-mode', '0666', '--allow-world-writable-socket', '--publisher-gid', String(NOBODY.gid)]);
    const browser = await clients.connect(daemon);
    const sent = await sendAs(NOBODY, daemon.socketPath, 'from-nogroup');
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stdout, '1\n');
    assert.equal(await browser.waitFor('from-nogroup').then((d) => d.from), NOBODY.uid);

    const stranger = await rawRefusalAs(STRANGER, daemon.socketPath);
    assert.equal(stranger.frames?.[0]?.code, ErrorCode.FORBIDDEN, JSON.stringify(stranger));
    const root = await rawRefusalAs({ uid: 0, gid: 0 }, daemon.socketPath);
    assert.equal(root.frames?.[0]?.code, ErrorCode.FORBIDDEN, JSON.stringify(root));
  });
});

describe('the socket file mode and group', { skip }, () => {
  test('by default (0660, the daemon\'s group) other users cannot even connect', async () => {
    const daemon = await daemonWith([]);
    const stat = fs.statSync(daemon.socketPath);
    assert.equal(stat.mode & 0o777, 0o660);
    assert.equal(stat.gid, process.getgid());
    assert.deepEqual(await rawRefusalAs(NOBODY, daemon.socketPath), { error: 'EACCES' });
    const sent = await sendAs(NOBODY, daemon.socketPath, 'x');
    assert.equal(sent.code, 1);
    assert.match(sent.stderr, /Permission denied/);
  });

  test('--socket-group gives the group write access: members publish, others cannot connect', async () => {
    const daemon = await daemonWith(['--socket-group', 'nogroup']);
    const stat = fs.statSync(daemon.socketPath);
    assert.equal(stat.gid, NOBODY.gid);
    assert.equal(stat.mode & 0o777, 0o660);
    const browser = await clients.connect(daemon);
    const sent = await sendAs(NOBODY, daemon.socketPath, 'from-member');
    assert.equal(sent.code, 0, sent.stderr);
    await browser.waitFor('from-member');
    assert.deepEqual(await rawRefusalAs(STRANGER, daemon.socketPath), { error: 'EACCES' });
  });

  test('--socket-mode 0600 leaves the daemon\'s own user only, even for its group', async () => {
    const daemon = await daemonWith(['--socket-mode', '0600', '--socket-group', 'nogroup']);
    assert.equal(fs.statSync(daemon.socketPath).mode & 0o777, 0o600);
    assert.deepEqual(await rawRefusalAs(NOBODY, daemon.socketPath), { error: 'EACCES' });
  });
});

// One rule for the default publish socket, used by `serve` and by the tools
// alike: root gets /run/push-core/push.sock; another user
// $XDG_RUNTIME_DIR/push-core/push.sock, or /tmp/push-core-<uid>/push.sock (a
// directory of that user's alone) without XDG_RUNTIME_DIR. The README's
// one-minute demo (serve, then send, neither with --socket) rests on it.
//
// Other users are played with `setpriv` (util-linux), which needs root: the
// suite is skipped otherwise.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';

import { binary, cleanEnv, freePort, runBinary, tempDir } from './support/daemon.mjs';
import { waitUntil, withGuard } from './support/wait.mjs';

const canSwitchUser = process.getuid?.() === 0 && fs.existsSync('/usr/bin/setpriv');
const skip = canSwitchUser ? false : 'needs root and setpriv to run as another user';

/** A user no one else on the machine is likely to be, per run. */
const USER = { uid: 40_000 + (process.pid % 20_000), gid: 40_000 + (process.pid % 20_000) };
const tmpDirOfUser = `/tmp/push-core-${USER.uid}`;

function setprivArgs(command, args) {
  return [`--reuid=${USER.uid}`, `--regid=${USER.gid}`, '--clear-groups', command, ...args];
}

/** Runs `push-core args` to completion as USER, with `env` over a clean one. */
function runAsUser(args, env) {
  return withGuard(new Promise((resolve, reject) => {
    const child = spawn('setpriv', setprivArgs(binary, args), { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  }), `push-core ${args[0]} as uid ${USER.uid}`);
}

const cleanups = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()();
});

/** `push-core serve` as USER with no --socket; stopped after the test. */
async function serveAsUser(env) {
  const port = await freePort();
  const child = spawn('setpriv', setprivArgs(binary, ['serve', '--listen', `127.0.0.1:${port}`]), {
    env: cleanEnv(env),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.setEncoding('utf8').on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.once('close', resolve));
  cleanups.push(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  return { log: () => log, exited };
}

/** The socket path `check-config` reports for USER with `env`. */
async function defaultSocketOfUser(env) {
  const result = await runAsUser(['check-config'], env);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout.match(/^socket = (".*")$/m)[1]);
}

describe('the default publish socket', { skip }, () => {
  test('root: /run/push-core/push.sock', async () => {
    const result = await runBinary(['check-config']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^socket = "\/run\/push-core\/push\.sock"$/m);
  });

  test('another user: serve and the tools meet under XDG_RUNTIME_DIR without --socket', async () => {
    const runtimeDir = tempDir('push-core-xdg-');
    fs.chownSync(runtimeDir, USER.uid, USER.gid);
    fs.chmodSync(runtimeDir, 0o700);
    cleanups.push(() => fs.rmSync(runtimeDir, { recursive: true, force: true }));
    const env = { XDG_RUNTIME_DIR: runtimeDir };
    const socket = path.join(runtimeDir, 'push-core', 'push.sock');
    assert.equal(await defaultSocketOfUser(env), socket);

    const daemon = await serveAsUser(env);
    await waitUntil(() => fs.existsSync(socket), { what: () => `${socket}; the daemon logged:\n${daemon.log()}` });
    const sent = await runAsUser(['send', '--event', 'e', '1'], env);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stdout, '0\n');
    const stats = await runAsUser(['stats'], env);
    assert.equal(stats.code, 0, stats.stderr);
    assert.equal(JSON.parse(stats.stdout).connections, 0);
  });

  test('another user without XDG_RUNTIME_DIR: a directory of their own under /tmp, made 0700', async () => {
    fs.rmSync(tmpDirOfUser, { recursive: true, force: true });
    cleanups.push(() => fs.rmSync(tmpDirOfUser, { recursive: true, force: true }));
    const env = { XDG_RUNTIME_DIR: '' };
    const socket = `${tmpDirOfUser}/push.sock`;
    assert.equal(await defaultSocketOfUser(env), socket);

    const daemon = await serveAsUser(env);
    await waitUntil(() => fs.existsSync(socket), { what: () => `${socket}; the daemon logged:\n${daemon.log()}` });
    const dir = fs.statSync(tmpDirOfUser);
    assert.equal(dir.uid, USER.uid);
    assert.equal(dir.mode & 0o777, 0o700);
    const sent = await runAsUser(['send', '--event', 'e', '1'], env);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stdout, '0\n');
  });

  test('a /tmp directory made by someone else first is refused, not used', async () => {
    fs.rmSync(tmpDirOfUser, { recursive: true, force: true });
    fs.mkdirSync(tmpDirOfUser, { mode: 0o777 });
    fs.chmodSync(tmpDirOfUser, 0o777);
    cleanups.push(() => fs.rmSync(tmpDirOfUser, { recursive: true, force: true }));

    const daemon = await serveAsUser({ XDG_RUNTIME_DIR: '' });
    const code = await withGuard(daemon.exited, 'the daemon to refuse');
    assert.equal(code, 1);
    assert.match(daemon.log(), new RegExp(`${tmpDirOfUser} exists but is not a directory of this user's alone`));
    assert.equal(fs.existsSync(`${tmpDirOfUser}/push.sock`), false);
  });

  test('a user with no daemon of their own is told which socket the tools tried', async () => {
    const result = await runAsUser(['stats'], { XDG_RUNTIME_DIR: '' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`cannot connect to push-core at ${tmpDirOfUser}/push\\.sock`));
  });
});

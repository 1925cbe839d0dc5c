// Starting and stopping the real push-core binary for a test.
//
// Each daemon gets a free loopback port, its own temporary directory with
// the publish socket in it, and an environment with every inherited
// PUSH_CORE_* variable removed, so the developer's shell cannot change what
// a test sees. Its stderr is kept so that a failing test can show what the
// daemon logged; set PUSH_CORE_TEST_LOGS=1 to also stream it live.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { waitUntil } from './wait.mjs';

export const repoRoot = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** The binary under test; `npm test` builds it first (see package.json). */
export const binary = process.env.PUSH_CORE_BIN ?? path.join(repoRoot, 'target/debug/push-core');

/** A loopback port nothing listens on right now. */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A fresh private directory under the system temp dir. */
export function tempDir(prefix = 'push-core-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** The inherited environment without PUSH_CORE_*, plus `extra`. */
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PUSH_CORE_')) env[key] = value;
  }
  return { ...env, ...extra };
}

function checkBinary() {
  if (!fs.existsSync(binary)) {
    throw new Error(`${binary} does not exist; build it with \`cargo build -p push-core\` (npm test does this)`);
  }
}

/**
 * Runs `push-core` with `args` to completion (for commands that exit by
 * themselves, like a serve with a bad config).
 */
export function runBinary(args, { env = {}, stdin, timeoutMs = 15_000 } = {}) {
  checkBinary();
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env: cleanEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`push-core ${args.join(' ')} did not exit within ${timeoutMs} ms\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.once('error', (error) => { clearTimeout(guard); reject(error); });
    child.once('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // the command may exit before reading
    if (stdin !== undefined) child.stdin.end(stdin);
    else child.stdin.end();
  });
}

export class Daemon {
  constructor({ child, port, socketPath, dir, ownsDir }) {
    this.child = child;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.socketPath = socketPath;
    this.dir = dir;
    this.ownsDir = ownsDir;
    this.log = '';
    this.exit = null;
    child.stderr.setEncoding('utf8').on('data', (data) => {
      this.log += data;
      if (process.env.PUSH_CORE_TEST_LOGS) process.stderr.write(data);
    });
    child.stdout.setEncoding('utf8').on('data', (data) => { this.log += data; });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get running() {
    return this.exit === null;
  }

  /** The last lines the daemon logged, for failure messages. */
  logTail(lines = 40) {
    return this.log.split('\n').slice(-lines).join('\n');
  }

  /** Resolves once /healthz answers 200; rejects if the daemon exits. */
  async waitReady(timeoutMs = 15_000) {
    await waitUntil(async () => {
      if (!this.running) {
        throw new Error(`push-core exited (${JSON.stringify(this.exit)}) before it was ready:\n${this.logTail()}`);
      }
      try {
        const response = await fetch(`${this.url}/healthz`);
        await response.text();
        return response.status === 200;
      } catch {
        return false;
      }
    }, { timeoutMs, intervalMs: 25, what: () => `push-core to answer /healthz on ${this.url}\n${this.logTail()}` });
  }

  /**
   * Sends `signal` and waits for the process to end; kills it for good if
   * it does not end within the guard time. Returns { code, signal }.
   */
  async stop({ signal = 'SIGTERM', timeoutMs = 15_000 } = {}) {
    if (this.running) this.child.kill(signal);
    let guard;
    const timedOut = new Promise((resolve) => { guard = setTimeout(() => resolve(null), timeoutMs); });
    const result = await Promise.race([this.exited, timedOut]);
    clearTimeout(guard);
    if (result === null) {
      this.child.kill('SIGKILL');
      await this.exited;
      throw new Error(`push-core did not stop within ${timeoutMs} ms of ${signal}:\n${this.logTail()}`);
    }
    return result;
  }

  /** Stops the daemon if it still runs and removes its directory. */
  async cleanup() {
    try {
      if (this.running) await this.stop();
    } finally {
      if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/**
 * Starts `push-core serve` on a free loopback port with a socket in a new
 * temporary directory, and waits for /healthz. `args` are extra flags.
 * `socketPath` and `dir` may be given to place the socket elsewhere.
 */
export async function startDaemon({ args = [], env = {}, socketPath, dir, logLevel = 'push_core=debug,info' } = {}) {
  checkBinary();
  const ownsDir = dir === undefined;
  dir ??= tempDir();
  socketPath ??= path.join(dir, 'push.sock');
  // The port is free when picked but could be taken before the daemon binds
  // it; try a few ports before giving up.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      binary,
      // logLevel null leaves the level to the config file or the environment.
      ['serve', '--listen', `127.0.0.1:${port}`, '--socket', socketPath, ...(logLevel === null ? [] : ['--log-level', logLevel]), ...args],
      { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const daemon = new Daemon({ child, port, socketPath, dir, ownsDir });
    try {
      await daemon.waitReady();
      return daemon;
    } catch (error) {
      if (daemon.running) await daemon.stop({ signal: 'SIGKILL' }).catch(() => {});
      const portTaken = /cannot listen on 127\.0\.0\.1/.test(daemon.log);
      if (!portTaken || attempt >= 3) {
        if (ownsDir) fs.rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

// A real redis-server for the cluster tests, on a free loopback port.
//
// Each test starts its own, with no persistence and no system service, and
// can kill it and start it again on the same port to play an outage.

import { spawn } from 'node:child_process';
import net from 'node:net';

import { freePort } from './daemon.mjs';
import { waitUntil } from './wait.mjs';

export class Redis {
  constructor(port) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.child = null;
    this.log = '';
  }

  /** Starts redis-server and waits until it answers PING. */
  async start() {
    this.child = spawn('redis-server', [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    const child = this.child;
    child.stdout.setEncoding('utf8').on('data', (data) => { this.log += data; });
    child.stderr.setEncoding('utf8').on('data', (data) => { this.log += data; });
    this.exited = new Promise((resolve) => child.once('exit', resolve));
    await waitUntil(() => this.ping(), { what: () => `redis-server on port ${this.port} to answer\n${this.log}` });
    return this;
  }

  /** True when the server answers PING. */
  ping() {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, '127.0.0.1');
      socket.setTimeout(500);
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (data) => { socket.destroy(); resolve(data.toString().startsWith('+PONG')); });
      socket.once('error', () => resolve(false));
      socket.once('timeout', () => { socket.destroy(); resolve(false); });
    });
  }

  /** Kills the server at once, as a crash would. */
  async kill() {
    if (this.child === null) return;
    this.child.kill('SIGKILL');
    await this.exited;
    this.child = null;
  }
}

/** Starts a redis-server on a free loopback port. */
export async function startRedis() {
  return new Redis(await freePort()).start();
}

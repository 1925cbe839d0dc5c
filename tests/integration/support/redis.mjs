// Real Redis for the cluster tests, on free loopback ports: one
// redis-server, a master with a replica watched by three Sentinels
// (`redis-server --sentinel`, the program Debian's redis-sentinel package
// runs), or a three-master Redis Cluster made with `redis-cli --cluster
// create`.
//
// Each test starts its own, with no persistence and no system service, and
// can kill a server and start it again on the same port to play an outage.

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

import { freePort, tempDir } from './daemon.mjs';
import { waitUntil } from './wait.mjs';

const run = promisify(execFile);

export class Redis {
  /** `args` are added to redis-server's command line; `dir` is its working directory. */
  constructor(port, { args = [], dir } = {}) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.args = args;
    this.dir = dir;
    this.child = null;
    this.log = '';
  }

  /** Starts redis-server and waits until it answers PING. */
  async start() {
    this.child = spawn('redis-server', [
      ...(this.config === undefined ? [] : [this.config]),
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      ...this.args,
    ], { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir });
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

  /** Runs redis-cli against this server; resolves with its output. */
  async cli(...args) {
    const { stdout } = await run('redis-cli', ['-p', String(this.port), ...args]);
    return stdout.trim();
  }
}

/** Starts a redis-server on a free loopback port. */
export async function startRedis() {
  return new Redis(await freePort()).start();
}

/**
 * A redis-server that speaks TLS only, with a certificate for localhost
 * signed by a CA of its own made with openssl; `url` is its rediss:// URL
 * and `caFile` the CA to trust (a daemon is given it in SSL_CERT_FILE,
 * which the system's certificate store is read from).
 */
export async function startTlsRedis() {
  const dir = tempDir('push-core-redis-tls-');
  const file = (name) => path.join(dir, name);
  const openssl = (...args) => run('openssl', args, { cwd: dir });
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=push-core test CA',
    '-keyout', file('ca.key'), '-out', file('ca.crt'));
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
    '-keyout', file('server.key'), '-out', file('server.csr'));
  fs.writeFileSync(file('san.cnf'), 'subjectAltName=DNS:localhost\n');
  await openssl('x509', '-req', '-days', '2', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'),
    '-CAcreateserial', '-extfile', file('san.cnf'), '-out', file('server.crt'));
  const port = await freePort();
  const redis = new Redis(await freePort(), {
    dir,
    args: ['--tls-port', String(port), '--tls-cert-file', file('server.crt'), '--tls-key-file', file('server.key'),
      '--tls-ca-cert-file', file('ca.crt'), '--tls-auth-clients', 'no'],
  });
  await redis.start();
  return {
    redis,
    url: `rediss://localhost:${port}`,
    caFile: file('ca.crt'),
    async stop() {
      await redis.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Sentinel: redis-server in sentinel mode, with a config file of its own (it rewrites it). */
class Sentinel extends Redis {
  constructor(port, dir, masterPort) {
    super(port, { args: ['--sentinel'], dir });
    this.config = path.join(dir, `sentinel-${port}.conf`);
    // Quick to notice a dead master (the tests kill one); a quorum of two.
    fs.writeFileSync(this.config, [
      `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
      `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
      `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
      '',
    ].join('\n'));
  }
}

/** The master name the Sentinels watch. */
export const SENTINEL_MASTER = 'pushmaster';

/**
 * A master with one replica, watched by three Sentinels; `url` is the
 * redis+sentinel:// URL of the three. `master()` asks the Sentinels which
 * server is master now.
 */
export async function startSentinelGroup() {
  const dir = tempDir('push-core-sentinel-');
  const first = new Redis(await freePort(), { dir });
  await first.start();
  const second = new Redis(await freePort(), { dir, args: ['--replicaof', '127.0.0.1', String(first.port)] });
  await second.start();
  await waitUntil(async () => (await first.cli('info', 'replication')).includes('connected_slaves:1'), {
    what: 'the replica to connect to its master',
  });
  const sentinels = [];
  for (let i = 0; i < 3; i++) sentinels.push(await new Sentinel(await freePort(), dir, first.port).start());
  const group = {
    servers: [first, second],
    sentinels,
    url: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${SENTINEL_MASTER}`,
    /** The port of the server the Sentinels call master now. */
    async masterPort() {
      const reply = await sentinels[0].cli('sentinel', 'get-master-addr-by-name', SENTINEL_MASTER);
      return Number(reply.split('\n')[1]);
    },
    /** The server the Sentinels call master now. */
    async master() {
      const port = await group.masterPort();
      return group.servers.find((server) => server.port === port);
    },
    async stop() {
      for (const server of [...sentinels, ...group.servers]) await server.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  // Every Sentinel must know the replica and the other Sentinels before a
  // failover can be agreed on.
  await waitUntil(async () => {
    for (const sentinel of sentinels) {
      const info = await sentinel.cli('sentinel', 'master', SENTINEL_MASTER);
      const field = (name) => Number(info.split('\n')[info.split('\n').indexOf(name) + 1]);
      if (field('num-slaves') < 1 || field('num-other-sentinels') < 2) return false;
    }
    return true;
  }, { timeoutMs: 30_000, what: 'the Sentinels to find the replica and each other' });
  return group;
}

/**
 * A Redis Cluster of three masters (no replicas), made as an operator
 * would: three redis-server --cluster-enabled yes, then redis-cli --cluster
 * create. `url` is a redis+cluster:// URL naming two of the three (the
 * third is found from them).
 */
export async function startRedisCluster() {
  const dir = tempDir('push-core-redis-cluster-');
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    nodes.push(await new Redis(port, {
      dir,
      args: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'],
    }).start());
  }
  await run('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '0', '--cluster-yes']);
  await waitUntil(async () => {
    for (const node of nodes) {
      if (!(await node.cli('cluster', 'info')).includes('cluster_state:ok')) return false;
    }
    return true;
  }, { what: 'the Redis Cluster to be ready' });
  return {
    nodes,
    url: `redis+cluster://127.0.0.1:${nodes[0].port},127.0.0.1:${nodes[1].port}`,
    async stop() {
      for (const node of nodes) await node.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

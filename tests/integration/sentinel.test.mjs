// Nodes behind Redis Sentinel (`redis_url = "redis+sentinel://..."`): a
// real master with a real replica, watched by three real Sentinels
// (support/redis.mjs). The nodes find the master through the Sentinels and
// follow a failover by themselves, and when the master is killed while
// messages flow, a publish that PHP was told reached a page either reaches
// it or the page is told to reload (push:recovery, recovered: false):
// never a silent gap.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { Kind, RawConnection, request, sendOk, stats, waitForCount } from './support/publish.mjs';
import { startSentinelGroup } from './support/redis.mjs';
import { sleep, waitUntil } from './support/wait.mjs';

/** Two nodes behind the Sentinels of a fresh group, for a describe block. */
function useSentinelCluster({ args = [], clients }) {
  const cluster = { group: null, backend: null, nodes: [] };
  before(async () => {
    cluster.group = await startSentinelGroup();
    cluster.backend = await startAuthBackend();
    for (const name of ['node-a', 'node-b']) {
      cluster.nodes.push(await startDaemon({
        args: ['--adapter', 'redis', '--redis-url', cluster.group.url, '--node-id', name, '--auth-url', cluster.backend.url, ...args],
      }));
    }
    await waitUntilWhole(cluster.nodes);
  });
  after(async () => {
    clients.closeAll();
    for (const node of cluster.nodes) await node.cleanup();
    await cluster.backend?.close();
    await cluster.group?.stop();
  });
  return cluster;
}

/** Waits until a publish on each node gets a complete count. */
async function waitUntilWhole(nodes, what = 'the nodes to reach the master through the Sentinels and see each other') {
  await waitUntil(async () => {
    for (const node of nodes) {
      if (!(await stats(node.socketPath)).cluster?.link_up) return false;
      const connection = await RawConnection.open(node.socketPath);
      try {
        await connection.call(request.hello(1, 2));
        const reply = await connection.call(request.publish(2, { event: 'warm-up', users: ['nobody'], data: null }));
        if (reply.partial) return false;
      } finally {
        connection.socket.destroy();
      }
    }
    return true;
  }, { timeoutMs: 30_000, what });
}

/**
 * Publishes 0, 1, 2, ... on one node's socket, one at a time, and keeps
 * each reply: what PHP would have been told.
 */
class Publisher {
  constructor(node) {
    this.node = node;
    this.replies = [];
    this.stopped = false;
  }

  async run(pause) {
    const connection = await RawConnection.open(this.node.socketPath);
    await connection.call(request.hello(1, 2));
    for (let n = 0; !this.stopped; n++) {
      const reply = await connection.call(request.publish(10 + n, { event: 'tick', data: n }));
      assert.equal(reply.kind, Kind.PUBLISHED, JSON.stringify(reply));
      this.replies.push({ n, recipients: reply.recipients, partial: reply.partial });
      await sleep(pause);
    }
    connection.socket.destroy();
  }

  /** The messages whose reply counted `pages` connections, not partial. */
  toldReached(pages) {
    return this.replies.filter((reply) => !reply.partial && reply.recipients === pages).map((reply) => reply.n);
  }
}

describe('nodes behind Sentinel, recovery on', () => {
  const clients = new ClientPool();
  const cluster = useSentinelCluster({ clients });

  test('a node reaches the master the Sentinels name: a publish on A reaches a page on B, counted', async () => {
    const [a, b] = cluster.nodes;
    const onB = await clients.connect(b, { name: 'guest on B' });
    await waitForCount(a.socketPath, {}, 1);
    const count = await sendOk(a.socketPath, { event: 'hello', data: 'through sentinel' });
    assert.equal(count, 1);
    assert.equal(await onB.waitFor('hello'), 'through sentinel');
    clients.closeAll();
  });

  test('the master killed while messages flow: each page gets every message it was counted for, or is told to reload', async () => {
    const [a, b] = cluster.nodes;
    const pages = [];
    for (const [node, name] of [[a, 'A'], [a, 'A'], [a, 'A'], [b, 'B'], [b, 'B'], [b, 'B']]) {
      pages.push(await clients.connect(node, { name: `page ${pages.length + 1} on ${name}` }));
    }
    const publisher = new Publisher(a);
    const publishing = publisher.run(5);
    await sleep(1000);

    const old = await cluster.group.master();
    await old.kill();
    await waitUntil(async () => (await cluster.group.masterPort()) !== old.port, {
      timeoutMs: 30_000,
      what: 'the Sentinels to promote the replica',
    });
    // The nodes follow by themselves: publishes are counted whole again.
    await waitUntil(() => publisher.replies.slice(-3).every((reply) => !reply.partial && reply.recipients === pages.length)
      && publisher.replies.length > 3, { timeoutMs: 30_000, what: 'publishes to reach every page again after the failover' });
    await sleep(1000);
    publisher.stopped = true;
    await publishing;

    const sent = publisher.replies.length;
    const told = publisher.toldReached(pages.length);
    assert.ok(told.length >= 100, `only ${told.length} of ${sent} publishes were counted whole`);
    assert.ok(told.includes(sent - 1), 'the last publish was counted whole');
    // Every page gets the last one, after the failover.
    for (const page of pages) await page.waitFor('tick', (n) => n === sent - 1);
    let resets = 0;
    for (const page of pages) {
      const received = page.received('tick');
      const reloads = page.statuses.slice(1).filter((status) => !status.recovered).length;
      resets += reloads;
      for (let i = 1; i < received.length; i++) {
        assert.ok(received[i] > received[i - 1], `${page.name}: ${received[i]} after ${received[i - 1]}: every message once, in order`);
      }
      const missing = told.filter((n) => !received.includes(n));
      assert.ok(missing.length === 0 || reloads > 0,
        `${page.name} missed ${missing.join(', ')}, which it was counted for, and was not told to reload`);
    }
    // What happened, for whoever reads the test's output.
    const partial = publisher.replies.filter((reply) => reply.partial).length;
    console.log(`# ${sent} publishes, ${partial} answered partial during the failover, ${resets} page reloads`);
  });
});

describe('nodes behind Sentinel, recovery off', () => {
  const clients = new ClientPool();
  const cluster = useSentinelCluster({ args: ['--recovery-window', '0'], clients });

  test('after the master is killed, the nodes find the new one and share publishes again', async () => {
    const [a, b] = cluster.nodes;
    const onB = await clients.connect(b, { name: 'guest on B' });
    const old = await cluster.group.master();
    await old.kill();
    await waitUntil(async () => (await cluster.group.masterPort()) !== old.port, {
      timeoutMs: 30_000,
      what: 'the Sentinels to promote the replica',
    });
    await waitUntilWhole(cluster.nodes, 'the nodes to follow the failover');
    assert.equal(await sendOk(a.socketPath, { event: 'after', data: 'failover' }), 1);
    assert.equal(await onB.waitFor('after'), 'failover');
    assert.match(a.log, /cluster link lost/);
  });
});

// Nodes on a Redis Cluster (`redis_url = "redis+cluster://..."`): a real
// cluster of three masters on loopback, made with redis-cli --cluster
// create (support/redis.mjs). Publishes, counts, presence and recovery
// work across the nodes as on one Redis; channels are sharded (SPUBLISH)
// and a namespace's history keys share a hash tag, so each namespace
// lives on one shard and namespaces spread over the shards.
//
// Identities come from the auth backend (support/auth-backend.mjs): sid-42
// is user 42 in group:7, sid-7 is user 7 in group:8.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { online, publishOverHttp, sendOk, stats, waitForCount } from './support/publish.mjs';
import { startRedisCluster } from './support/redis.mjs';
import { waitUntil } from './support/wait.mjs';

const TOKEN = 'redis-cluster-test-token-0123456789abcdefghij';

/** Namespaces enough that their histories cannot all land on one shard. */
const NAMESPACES = ['/chat', '/news', '/alerts', '/orders', '/feed', '/games'];

/** Publishes through a node's HTTP API; resolves with { recipients, partial }. */
const publishVia = (node, body) => publishOverHttp(node, TOKEN, body);

for (const recovery of ['on', 'off']) {
  describe(`three nodes on a Redis Cluster, recovery ${recovery}`, () => {
    const clients = new ClientPool();
    const cluster = { redis: null, backend: null, nodes: [] };
    before(async () => {
      cluster.redis = await startRedisCluster();
      cluster.backend = await startAuthBackend();
      for (const name of ['node-a', 'node-b', 'node-c']) {
        cluster.nodes.push(await startDaemon({
          args: [
            '--adapter', 'redis', '--redis-url', cluster.redis.url, '--node-id', name,
            '--auth-url', cluster.backend.url, '--http-publish-token', TOKEN,
            ...NAMESPACES.flatMap((namespace) => ['--namespace', namespace]),
            ...(recovery === 'on' ? [] : ['--recovery-window', '0']),
          ],
        }));
      }
      await waitUntil(async () => {
        for (const node of cluster.nodes) {
          const { cluster: summary } = await stats(node.socketPath);
          if (!summary?.link_up || summary.partial) return false;
          if ((await publishVia(node, { event: 'warm-up', users: ['nobody'], data: null })).partial) return false;
        }
        return true;
      }, { timeoutMs: 30_000, what: 'the nodes to join through the Redis Cluster' });
    });
    after(async () => {
      clients.closeAll();
      for (const node of cluster.nodes) await node.cleanup();
      await cluster.backend?.close();
      await cluster.redis?.stop();
    });
    afterEach(() => clients.closeAll());

    test('a broadcast published on A reaches pages on B and C, counted, in every namespace', async () => {
      const [a, b, c] = cluster.nodes;
      for (const namespace of NAMESPACES) {
        const onB = await clients.connect(b, { namespace, name: `guest of ${namespace} on B` });
        const onC = await clients.connect(c, { namespace, name: `guest of ${namespace} on C` });
        await waitForCount(a.socketPath, { namespace }, 2);
        for (let n = 0; n < 3; n++) {
          assert.equal(await sendOk(a.socketPath, { namespace, event: 'news', data: n }), 2);
        }
        for (const page of [onB, onC]) {
          await page.waitFor('news', (n) => n === 2);
          assert.deepEqual(page.received('news'), [0, 1, 2], `${page.name}: in order`);
        }
      }
    });

    test('a private message and a room reach only theirs, whichever node they are published on', async () => {
      const [a, b, c] = cluster.nodes;
      const alice = await clients.connect(c, { namespace: '/chat', cookie: cookieFor('sid-42'), name: 'user 42 (group:7) on C' });
      const bob = await clients.connect(b, { namespace: '/chat', cookie: cookieFor('sid-7'), name: 'user 7 (group:8) on B' });
      await waitUntil(async () => (await online(a.socketPath, '/chat', '42')).connections === 1, { what: 'A to count user 42 on C' });

      assert.equal(await sendOk(a.socketPath, { namespace: '/chat', event: 'inbox', users: ['42'], data: 'for 42' }), 1);
      assert.equal(await sendOk(b.socketPath, { namespace: '/chat', event: 'room', rooms: ['group:8'], data: 'g8' }), 1);
      assert.equal(await alice.waitFor('inbox'), 'for 42');
      assert.equal(await bob.waitFor('room'), 'g8');
      await sendOk(a.socketPath, { namespace: '/chat', event: 'marker', data: 1 });
      await alice.waitFor('marker');
      await bob.waitFor('marker');
      assert.deepEqual(bob.received('inbox'), []);
      assert.deepEqual(alice.received('room'), []);
    });

    test('presence and STATS count every node', async () => {
      const [a, b, c] = cluster.nodes;
      await clients.connect(b, { cookie: cookieFor('sid-7'), name: 'user 7 on B' });
      await clients.connect(c, { cookie: cookieFor('sid-7'), name: 'user 7 on C' });
      const now = await waitUntil(async () => {
        const reply = await online(a.socketPath, '/', '7');
        return reply.connections === 2 && reply;
      }, { what: 'A to count user 7 on B and C' });
      assert.deepEqual([now.online, now.connections, now.partial], [true, 2, false]);
      const fromA = await stats(a.socketPath);
      assert.equal(fromA.cluster.partial, false);
      assert.equal(fromA.cluster.namespaces['/'].connections, 2);
    });

    if (recovery === 'on') {
      test('a page cut off from B, reconnecting to C with its offset, gets what was published on A meanwhile', async () => {
        const [a, b, c] = cluster.nodes;
        const page = await clients.connect(b, { namespace: '/news', cookie: cookieFor('sid-42'), name: 'user 42 on B' });
        await sendOk(a.socketPath, { namespace: '/news', event: 'n', data: 0 });
        await page.waitFor('n', (n) => n === 0);
        const { offset } = page.events.at(-1);
        page.close();
        for (let n = 1; n <= 3; n++) await sendOk(a.socketPath, { namespace: '/news', event: 'n', data: n });
        await sendOk(a.socketPath, { namespace: '/news', event: 'n', users: ['42'], data: 'private 4' });
        await sendOk(a.socketPath, { namespace: '/news', event: 'n', users: ['7'], data: 'for someone else' });

        const back = await clients.connect(c, { namespace: '/news', cookie: cookieFor('sid-42'), name: 'user 42 back on C', auth: { offset } });
        await waitUntil(() => back.statuses.length > 0, { what: 'the push:recovery status' });
        assert.deepEqual([back.statuses[0].recovered, back.statuses[0].replayed], [true, 4]);
        await waitUntil(() => back.received('n').length >= 4, { what: 'the replay' });
        assert.deepEqual(back.received('n'), [1, 2, 3, 'private 4']);
      });

      test('each namespace\'s history keys share one slot, and the namespaces spread over the shards', async () => {
        const holders = new Map();
        for (const [index, node] of cluster.redis.nodes.entries()) {
          const keys = (await node.cli('--scan', '--pattern', '{push-core:*')).split('\n').filter(Boolean);
          for (const key of keys) {
            const namespace = key.slice('{push-core:'.length, key.indexOf('}'));
            holders.set(namespace, [...(holders.get(namespace) ?? []), { index, key }]);
          }
        }
        for (const namespace of ['/chat', '/news']) {
          const held = holders.get(namespace) ?? [];
          assert.deepEqual(held.map(({ key }) => key.split('}:')[1]).sort(), ['epoch', 'history', 'seq', 'unnumbered'], `${namespace}: ${JSON.stringify(held)}`);
          assert.equal(new Set(held.map(({ index }) => index)).size, 1, `${namespace}'s keys on one shard`);
          // Each new entry is published on the shard that keeps the history.
          const live = await cluster.redis.nodes[held[0].index].cli('pubsub', 'shardchannels');
          assert.ok(live.split('\n').includes(`{push-core:${namespace}}:live`), `${namespace}'s live channel: ${live}`);
        }
        const shards = new Set([...holders.values()].map((held) => held[0].index));
        assert.ok(shards.size >= 2, `the namespaces' histories are all on one shard: ${JSON.stringify([...holders])}`);
      });
    }
  });
}

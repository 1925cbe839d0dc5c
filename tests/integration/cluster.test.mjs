// Three push-core nodes sharing through a real redis-server
// (`--adapter redis`), with real socket.io clients spread over them: a
// publish on any node reaches its targets on every node, and counts,
// presence and STATS add up every node's connections. Counts come from
// each node's replicated presence, so an exact count right after pages
// connect to other nodes first waits for it (waitForCount, isOnline).
//
// Identities come from the auth backend (support/auth-backend.mjs): sid-42
// is user 42 in group:7, sid-7 is user 7 in group:8, sid-9 is user 9 in
// group:7.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';

import { io } from 'socket.io-client';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { freePort, runBinary, startDaemon, tempDir } from './support/daemon.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { Kind, RawConnection, online, publishOverHttp, request, send, sendOk, stats, waitForCount } from './support/publish.mjs';
import { Redis, startRedis, startTlsRedis } from './support/redis.mjs';
import { sleep, waitUntil } from './support/wait.mjs';

const TOKEN = 'cluster-test-token-0123456789abcdefghijklmnop';

/** Starts a node of the cluster on `redis`, named `name`. */
function startNode(redis, backend, name, args = []) {
  return startDaemon({
    args: [
      '--adapter', 'redis',
      '--redis-url', redis.url,
      '--node-id', name,
      '--auth-url', backend.url,
      '--namespace', '/chat',
      '--http-publish-token', TOKEN,
      ...args,
    ],
  });
}

/**
 * With recovery on (the default) publishes reach other nodes through the
 * cluster's history in Redis; off, through socketioxide's Redis adapter.
 */
const recoveryArgs = (recovery) => (recovery === 'on' ? [] : ['--recovery-window', '0']);

/** Publishes through a node's HTTP API; resolves with { recipients, partial }. */
const publishVia = (node, body) => publishOverHttp(node, TOKEN, body);

/** Waits until every node sees the others (each answers the survey). */
async function waitForCluster(nodes) {
  await waitUntil(async () => {
    for (const node of nodes) {
      const { cluster } = await stats(node.socketPath);
      if (!cluster?.link_up || cluster.partial) return false;
    }
    // Each node must count the others: a publish to nobody in particular
    // (a user no one is) answers with a complete count from every node.
    for (const node of nodes) {
      const { partial } = await publishVia(node, { event: 'warm-up', users: ['nobody'], data: null });
      if (partial) return false;
    }
    return true;
  }, { what: 'the three nodes to see each other through Redis' });
}

/**
 * A redis-server, the auth backend and nodes named `names` on them, for a
 * describe block: started before its tests, stopped after them (with the
 * clients in `clients`). `redis` may be given not started, to start later.
 */
function useCluster(names, { args = [], clients, redis } = {}) {
  const cluster = { redis, backend: null, nodes: [] };
  if (names.length > 0) {
    before(async () => {
      await cluster.start(names);
      await waitForCluster(cluster.nodes);
    });
  }
  cluster.start = async (starting) => {
    cluster.redis ??= await startRedis();
    cluster.backend = await startAuthBackend();
    for (const name of starting) cluster.nodes.push(await startNode(cluster.redis, cluster.backend, name, args));
  };
  cluster.startNode = (name) => startNode(cluster.redis, cluster.backend, name, args);
  after(async () => {
    clients?.closeAll();
    for (const node of cluster.nodes) await node.cleanup();
    await cluster.backend?.close();
    await cluster.redis?.kill();
  });
  return cluster;
}

/**
 * Starts nodes A and B of `cluster` on a Redis of its own that keeps its
 * snapshot in a new directory (for `save` and a restart from it); resolves
 * with the nodes, linked, and the directory.
 */
async function startOnSnapshotRedis(cluster, dirPrefix) {
  const dir = tempDir(dirPrefix);
  cluster.redis = new Redis(await freePort(), { dir, args: ['--dir', dir, '--dbfilename', 'dump.rdb'] });
  await cluster.redis.start();
  await cluster.start(['node-a', 'node-b']);
  await waitForCluster(cluster.nodes);
  const [a, b] = cluster.nodes;
  return { dir, a, b };
}

describe('cluster settings', () => {
  const CASES = [
    { key: 'adapter', args: ['--adapter', 'redis'], says: 'is redis but redis_url is not set; add --redis-url redis://HOST:PORT' },
    { key: 'adapter', args: ['--adapter', 'postgres'], says: '"postgres" is not one of: memory, redis' },
    { key: 'redis_url', args: ['--redis-url', 'redis://127.0.0.1:6379'], says: 'is set but adapter is memory, so it would not be used; add --adapter redis' },
    { key: 'redis_url', args: ['--adapter', 'redis', '--redis-url', 'http://127.0.0.1:6379'], says: 'which is not Redis\'s; use redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS), redis+unix:///PATH[?db=DB], redis+sentinel://' },
    { key: 'node_id', args: ['--node-id', 'node one'], says: 'must be 1 to 64 letters, digits' },
    { key: 'redis_prefix', args: ['--redis-prefix', 'a#b'], says: 'must be letters, digits' },
    { key: 'cluster_wait', args: ['--cluster-wait', '0s'], says: 'must be more than 0 and at most 10s' },
    { key: 'state_dir', args: ['--adapter', 'redis', '--redis-url', 'redis://127.0.0.1:1', '--state-dir', '/tmp/x'], says: 'the recovery history is kept in Redis' },
  ];
  for (const { key, args, says } of CASES) {
    test(`check-config ${args.join(' ')} exits 2 naming ${key}`, async () => {
      const result = await runBinary(['check-config', ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.ok(result.stderr.startsWith(`push-core: invalid value for ${key} (`), result.stderr);
      assert.ok(result.stderr.includes(says), result.stderr);
    });
  }

  test('the Redis password is never printed', async () => {
    const result = await runBinary(['check-config', '--adapter', 'redis', '--redis-url', 'redis://:s3cret-pass@127.0.0.1:6379/2']);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(!result.stdout.includes('s3cret-pass'), result.stdout);
    assert.match(result.stdout, /^redis_url = "redis:\/\/:\(hidden\)@127\.0\.0\.1:6379\/2"$/m);
  });
});

for (const recovery of ['on', 'off']) {
  describe(`three nodes sharing through Redis, recovery ${recovery}`, () => {
    const clients = new ClientPool();
    const cluster = useCluster(['node-a', 'node-b', 'node-c'], { args: recoveryArgs(recovery), clients });
    afterEach(() => clients.closeAll());

    test('a broadcast published on A reaches clients on B and C, and the reply counts them all', async () => {
      const [a, b, c] = cluster.nodes;
      const onA = await clients.connect(a, { name: 'guest on A' });
      const onB = await clients.connect(b, { name: 'guest on B' });
      const onC1 = await clients.connect(c, { name: 'guest 1 on C' });
      const onC2 = await clients.connect(c, { name: 'guest 2 on C', transport: 'polling' });
      await waitForCount(a.socketPath, {}, 4);

      const count = await sendOk(a.socketPath, { event: 'news', data: { n: 1 } });

      assert.equal(count, 4);
      for (const client of [onA, onB, onC1, onC2]) assert.deepEqual(await client.waitFor('news'), { n: 1 });
    });

    test('garbage on the channel that carries publishes is logged and ignored, and loses nothing after it', async () => {
      const [a, b] = cluster.nodes;
      const onB = await clients.connect(b, { name: 'guest on B' });
      await waitForCount(a.socketPath, {}, 1);
      const channel = recovery === 'on' ? 'push-core:live:/' : 'push-core:relay:/';
      for (const garbage of ['', 'not an entry at all', '9 9 9 6:short', '{"event":"x","payload":1}']) {
        await cluster.redis.cli('publish', channel, garbage);
      }
      await sendOk(a.socketPath, { event: 'after', data: 1 });
      assert.equal(await onB.waitFor('after'), 1);
      const events = onB.events.map((e) => e.event).filter((event) => event !== 'count-probe');
      assert.deepEqual(events, ['after'], 'nothing made of the garbage reached the page');
      await waitUntil(() => /unreadable/.test(b.log), { what: 'B to log the unreadable message' });
    });

    test('a private message reaches its user on C only, whichever node it is published on', async () => {
      const [a, b, c] = cluster.nodes;
      const alice = await clients.connect(c, { cookie: cookieFor('sid-42'), name: 'user 42 on C' });
      const bob = await clients.connect(b, { cookie: cookieFor('sid-7'), name: 'user 7 on B' });
      const guest = await clients.connect(a, { name: 'guest on A' });
      await waitUntil(async () => (await online(a.socketPath, '/', '42')).connections === 1, { what: 'A to count user 42 on C' });

      const count = await sendOk(a.socketPath, { event: 'inbox', users: ['42'], data: 'for 42' });

      assert.equal(count, 1);
      assert.equal(await alice.waitFor('inbox'), 'for 42');
      // A marker broadcast after it: once each has it, the private message
      // had its chance to arrive, and must not have.
      await sendOk(a.socketPath, { event: 'marker', data: 1 });
      for (const other of [bob, guest]) {
        await other.waitFor('marker');
        assert.deepEqual(other.received('inbox'), [], `${other.name} must not receive it`);
      }
    });

    test('rooms and except reach across nodes', async () => {
      const [a, b, c] = cluster.nodes;
      const u42 = await clients.connect(a, { cookie: cookieFor('sid-42'), namespace: '/chat', name: 'user 42 (group:7) on A' });
      const u9 = await clients.connect(c, { cookie: cookieFor('sid-9'), namespace: '/chat', name: 'user 9 (group:7) on C' });
      const u7 = await clients.connect(b, { cookie: cookieFor('sid-7'), namespace: '/chat', name: 'user 7 (group:8) on B' });
      await waitForCount(b.socketPath, { namespace: '/chat' }, 3);

      const toRoom = await sendOk(b.socketPath, { namespace: '/chat', event: 'room', rooms: ['group:7'], data: 'g7' });
      assert.equal(toRoom, 2);
      assert.equal(await u42.waitFor('room'), 'g7');
      assert.equal(await u9.waitFor('room'), 'g7');

      const exceptOne = await sendOk(b.socketPath, { namespace: '/chat', event: 'all-but-9', except: ['9'], data: 'x' });
      assert.equal(exceptOne, 2);
      await u42.waitFor('all-but-9');
      await u7.waitFor('all-but-9');
      await sendOk(c.socketPath, { namespace: '/chat', event: 'marker', data: 1 });
      await u9.waitFor('marker');
      assert.deepEqual(u9.received('all-but-9'), []);
      assert.deepEqual(u7.received('room'), []);
    });

    test('isOnline on A sees a user connected only to B, and STATS counts every node', async () => {
      const [a, b, c] = cluster.nodes;
      const before = await online(a.socketPath, '/', '7');
      assert.deepEqual([before.online, before.connections], [false, 0]);
      await clients.connect(b, { cookie: cookieFor('sid-7'), name: 'user 7 on B' });
      await clients.connect(b, { cookie: cookieFor('sid-7'), name: 'user 7 again on B', transport: 'polling' });
      await clients.connect(c, { name: 'guest on C' });

      const now = await waitUntil(async () => {
        const reply = await online(a.socketPath, '/', '7');
        return reply.connections === 2 && reply;
      }, { what: 'A to count both of user 7\'s connections on B' });
      assert.deepEqual([now.online, now.connections, now.partial], [true, 2, false]);

      const fromA = await stats(a.socketPath);
      assert.equal(fromA.connections, 0, 'the top-level figures are the node\'s own');
      assert.equal(fromA.cluster.node, 'node-a');
      assert.equal(fromA.cluster.partial, false);
      assert.equal(fromA.cluster.namespaces['/'].connections, 3);
    });

    test('a stopped node is counted from its presence at once, partial once its heartbeat is overdue, left out once silent, and counted again when back', async () => {
      const [a, , c] = cluster.nodes;
      await clients.connect(a, { name: 'guest on A' });
      const onC = await clients.connect(c, { name: 'guest on C' });
      await waitForCount(a.socketPath, {}, 2);
      c.child.kill('SIGSTOP');
      try {
        // No wait on C: its page is counted as of C's last presence, and
        // Redis keeps the message for C until it runs again.
        const reply = await publishVia(a, { event: 'while-c-sleeps', data: 1 });
        assert.deepEqual(reply, { recipients: 2, partial: false });
        // STATS asks every node: C cannot answer within cluster_wait, so
        // A's figures leave it out and say so.
        assert.equal((await stats(a.socketPath)).cluster.partial, true);
        await waitUntil(async () => (await publishVia(a, { event: 'overdue', data: 1 })).partial, {
          what: 'C\'s heartbeat to be overdue',
        });
        const silent = await waitUntil(async () => {
          const reply = await publishVia(a, { event: 'silent', data: 1 });
          return reply.recipients === 1 && reply;
        }, { what: 'A to stop counting the silent node C' });
        // With recovery off, Redis's PUBLISH reply says one more node than
        // the presence counts received the message (C's connection to Redis
        // is still open): partial, since C hands it out once it runs again.
        assert.equal(silent.partial, recovery === 'off');
      } finally {
        c.child.kill('SIGCONT');
      }
      assert.equal(await onC.waitFor('while-c-sleeps'), 1, 'C delivers what it was counted for once it runs');
      await waitUntil(async () => {
        const back = await publishVia(a, { event: 'after', data: 1 });
        return back.recipients === 2 && !back.partial;
      }, { what: 'node C to be counted again' });
    });

    test('the Unix socket says a count is partial: protocol 2 flags it, protocol 1 gets the count alone, the CLI tells', async () => {
      const [a, , c] = cluster.nodes;
      await clients.connect(a, { cookie: cookieFor('sid-42'), name: 'user 42 on A' });
      await clients.connect(c, { name: 'guest on C' });
      const raw = async (version) => {
        const connection = await RawConnection.open(a.socketPath);
        connection.write(Buffer.concat([
          request.hello(1, version),
          request.publish(2, { event: `raw-v${version}`, data: 1 }),
          request.online(3, '/', '42'),
        ]));
        const replies = [];
        for (let i = 0; i < 3; i++) replies.push(await connection.reply());
        connection.socket.destroy();
        return replies.slice(1).map(({ recipients, connections, flags, partial }) => ({ recipients, connections, flags, partial }));
      };
      await waitUntil(async () => (await online(a.socketPath, '/', '42')).connections === 1, { what: 'A to count user 42' });
      // Counts are partial while the node cannot reach Redis.
      await cluster.redis.kill();
      await waitUntil(async () => (await stats(a.socketPath)).cluster.link_up === false, { what: 'A to see the link down' });
      try {
        assert.deepEqual(await raw(2), [
          { recipients: 1, connections: undefined, flags: 1, partial: true },
          { recipients: undefined, connections: 1, flags: 1, partial: true },
        ]);
        // The decoder asserts no trailing bytes: version 1 has no flags byte.
        assert.deepEqual(await raw(1), [
          { recipients: 1, connections: undefined, flags: undefined, partial: undefined },
          { recipients: undefined, connections: 1, flags: undefined, partial: undefined },
        ]);
        const sent = await send(a.socketPath, { event: 'cli', data: 1 });
        assert.equal(sent.code, 0, sent.stderr);
        assert.equal(sent.stdout, '1\n', 'the count alone on stdout, for scripts');
        assert.match(sent.stderr, /partial/);
        assert.deepEqual(await online(a.socketPath, '/', '42'), { namespace: '/', user: '42', online: true, connections: 1, partial: true });
      } finally {
        await cluster.redis.start();
      }
      await waitForCount(a.socketPath, {}, 2);
      const sent = await send(a.socketPath, { event: 'cli-after', data: 1 });
      assert.deepEqual([sent.stdout, sent.stderr], ['2\n', '']);
    });
  });

  describe(`Redis down and back, recovery ${recovery}`, () => {
    const clients = new ClientPool();
    const cluster = useCluster(['node-a', 'node-b'], { args: recoveryArgs(recovery), clients });

    test('nodes keep delivering to their own browsers, say the cluster was not reached, and heal by themselves', async () => {
      const [a, b] = cluster.nodes;
      const onA = await clients.connect(a, { name: 'guest on A' });
      const onB = await clients.connect(b, { name: 'guest on B' });

      await cluster.redis.kill();
      const during = await publishVia(a, { event: 'during', data: 'local' });
      assert.deepEqual(during, { recipients: 1, partial: true });
      assert.equal(await onA.waitFor('during'), 'local');
      assert.equal((await fetch(`${a.url}/healthz`)).status, 200, 'the node still serves');
      await waitUntil(async () => (await stats(a.socketPath)).cluster.link_up === false, { what: 'A to see the link down' });
      assert.match(a.log, /cluster link lost/);
      const down = await scrape(a);
      assert.equal(seriesValue(down, 'push_cluster_link_up'), 0);
      assert.ok(seriesValue(down, 'push_cluster_partial_answers_total') >= 1);

      await cluster.redis.start();
      await waitUntil(async () => {
        const reply = await publishVia(a, { event: 'after', data: 'both' });
        return reply.recipients === 2 && !reply.partial;
      }, { what: 'the cluster to heal after Redis came back' });
      assert.equal(await onB.waitFor('after'), 'both');
      assert.deepEqual(onB.received('during'), [], 'B was not reachable when it was published');
      assert.match(a.log, /cluster link up/);
      assert.equal(seriesValue(await scrape(a), 'push_cluster_link_up'), 1);
    });
  });
}

for (const recovery of ['on', 'off']) {
  describe(`nodes that leave and come back, recovery ${recovery}`, () => {
    const clients = new ClientPool();
    const cluster = useCluster(['node-a', 'node-b'], { args: recoveryArgs(recovery), clients });
    afterEach(() => clients.closeAll());

    test('a node killed with SIGKILL stops being counted once it is silent, and is counted again once restarted', async () => {
      const [a, b] = cluster.nodes;
      await clients.connect(a, { name: 'guest on A' });
      await clients.connect(b, { name: 'guest on B' });
      await waitForCount(a.socketPath, {}, 2);

      await b.stop({ signal: 'SIGKILL' });
      await waitUntil(async () => {
        const reply = await publishVia(a, { event: 'after-kill', data: 1 });
        return reply.recipients === 1 && !reply.partial;
      }, { what: 'A to stop counting the killed node B' });
      await b.cleanup();

      const restarted = await cluster.startNode('node-b');
      cluster.nodes[1] = restarted;
      const onB = await clients.connect(restarted, { name: 'guest on the restarted B' });
      await waitForCount(a.socketPath, {}, 2);
      const reply = await publishVia(a, { event: 'restarted', data: 2 });
      assert.deepEqual(reply, { recipients: 2, partial: false });
      assert.equal(await onB.waitFor('restarted'), 2);
    });

    test('a node that stops cleanly says goodbye: the others stop counting it at once', async () => {
      const [a, b] = cluster.nodes;
      await clients.connect(b, { cookie: cookieFor('sid-42'), name: 'user 42 on B' });
      await waitUntil(async () => (await online(a.socketPath, '/', '42')).connections === 1, { what: 'A to count user 42 on B' });

      await b.stop();
      assert.deepEqual(await publishVia(a, { event: 'after-goodbye', data: 1 }), { recipients: 0, partial: false });
      const gone = await online(a.socketPath, '/', '42');
      assert.deepEqual([gone.connections, gone.partial], [0, false]);
    });
  });
}

describe('Redis not there when the nodes start', () => {
  const clients = new ClientPool();
  const cluster = useCluster([], { clients });

  test('the nodes start and serve their own browsers, and join the cluster once Redis is up', async () => {
    cluster.redis = new Redis(await freePort());
    await cluster.start(['node-a', 'node-b']);
    const [a, b] = cluster.nodes;
    const onA = await clients.connect(a, { name: 'guest on A' });
    const onB = await clients.connect(b, { name: 'guest on B' });

    assert.deepEqual(await publishVia(a, { event: 'alone', data: 1 }), { recipients: 1, partial: true });
    assert.equal(await onA.waitFor('alone'), 1);
    assert.match(a.log, /cannot reach Redis/);

    await cluster.redis.start();
    await waitUntil(async () => {
      const reply = await publishVia(a, { event: 'together', data: 2 });
      return reply.recipients === 2 && !reply.partial;
    }, { what: 'the nodes to join once Redis is up' });
    assert.equal(await onB.waitFor('together'), 2);
    assert.deepEqual(onB.received('alone'), []);
  });
});

describe('recovery across nodes', () => {
  const clients = new ClientPool();
  const cluster = useCluster(['node-a', 'node-b', 'node-c'], { clients });

  test('a page cut off from B, reconnecting to C with its last offset, gets what was published on A meanwhile, in order', async () => {
    const [a, b, c] = cluster.nodes;
    const page = await clients.connect(b, { cookie: cookieFor('sid-42'), name: 'user 42 on B' });
    await sendOk(a.socketPath, { event: 'n', data: 0 });
    await page.waitFor('n', (n) => n === 0);
    const { offset } = page.events.at(-1);
    page.close();

    for (let n = 1; n <= 3; n++) await sendOk(a.socketPath, { event: 'n', data: n });
    await sendOk(a.socketPath, { event: 'n', users: ['42'], data: 'private 4' });
    await sendOk(a.socketPath, { event: 'n', users: ['7'], data: 'for someone else' });

    const back = await clients.connect(c, { cookie: cookieFor('sid-42'), name: 'user 42 back on C', auth: { offset } });
    await waitUntil(() => back.statuses.length > 0, { what: 'the push:recovery status' });
    assert.deepEqual(back.statuses[0].recovered, true);
    assert.equal(back.statuses[0].replayed, 4);
    await waitUntil(() => back.received('n').length >= 4, { what: 'the replay' });
    assert.deepEqual(back.received('n'), [1, 2, 3, 'private 4']);

    // Offsets mean the same on every node: the page's offsets continue
    // those it saw on B.
    const offsets = [offset, ...back.events.map((e) => e.offset)];
    assert.equal(new Set(offsets).size, offsets.length);
  });
});

describe('an entry the live channel did not bring', () => {
  const clients = new ClientPool();
  const cluster = useCluster(['node-a', 'node-b'], { clients });

  test('is read from the history: when the next entry shows the gap, or at the check a second later', async () => {
    const [a, b] = cluster.nodes;
    const page = await clients.connect(b, { name: 'page on B' });
    await sendOk(a.socketPath, { event: 'n', data: 1 });
    await page.waitFor('n', (n) => n === 1);
    const statuses = page.statuses.length;

    // Numbered and kept as the numbering script does, but not published:
    // as if B's queue of live entries had overflowed. (The keys of the
    // namespace `/`.)
    const { redis } = cluster;
    const epoch = await redis.cli('get', 'push-core:epoch:/');
    const unpublished = async (data) => {
      const seq = await redis.cli('incr', 'push-core:seq:/');
      const message = JSON.stringify({ seq: 0, published_ms: Date.now(), event: 'n', payload: data });
      const messages = `${Buffer.byteLength(message)}:${message}`;
      await redis.cli('xadd', 'push-core:history:/', `0-${seq}`, 'e', epoch, 't', `unpublished-${seq}`, 'b', messages);
    };

    await unpublished(2);
    await sendOk(a.socketPath, { event: 'n', data: 3 });
    await page.waitFor('n', (n) => n === 3);
    assert.deepEqual(page.received('n'), [1, 2, 3]);

    // Nothing follows this one: the periodic check finds it.
    await unpublished(4);
    await page.waitFor('n', (n) => n === 4);
    assert.deepEqual(page.received('n'), [1, 2, 3, 4]);
    assert.equal(page.statuses.length, statuses, 'the page was not told to reload');
    const offsets = page.events.map((e) => e.offset);
    assert.equal(new Set(offsets).size, offsets.length);
  });
});

describe('Redis going back to an older copy of the history', () => {
  const clients = new ClientPool();
  const cluster = useCluster([], { clients });

  test('a node whose last message was lost and its number given again tells its pages to reload, and the old offsets are refused', async () => {
    const { dir, a, b } = await startOnSnapshotRedis(cluster, 'push-core-redis-snapshot-');
    const page = await clients.connect(b, { name: 'page on B' });
    for (let n = 1; n <= 3; n++) await sendOk(a.socketPath, { event: 'n', data: n });
    await page.waitFor('n', (n) => n === 3);
    await cluster.redis.cli('save');
    for (let n = 4; n <= 5; n++) await sendOk(a.socketPath, { event: 'n', data: n });
    await page.waitFor('n', (n) => n === 5);
    const { offset: seenLast } = page.events.at(-1);

    // B sleeps while Redis comes back from the snapshot (numbered up to 3)
    // and a node that never saw 4 and 5 publishes three messages: they are
    // numbered 4, 5 and 6 again.
    b.child.kill('SIGSTOP');
    try {
      await a.stop();
      await cluster.redis.kill();
      await cluster.redis.start();
      cluster.nodes[0] = await cluster.startNode('node-c');
      await waitUntil(async () => (await stats(cluster.nodes[0].socketPath)).cluster.link_up, { what: 'C to reach Redis' });
      for (const n of ['new 4', 'new 5', 'new 6']) await sendOk(cluster.nodes[0].socketPath, { event: 'n', data: n });
    } finally {
      b.child.kill('SIGCONT');
    }

    // B finds the entry it read last replaced: without being told, its
    // page would get "new 6" and never "new 4" and "new 5".
    await waitUntil(() => page.statuses.length >= 2, { what: 'the page on B to be told to reload' });
    assert.deepEqual([page.statuses[1].recovered, page.statuses[1].replayed], [false, 0]);
    assert.match(b.log, /lost messages this node had read/);
    assert.deepEqual(page.received('n').slice(0, 5), [1, 2, 3, 4, 5]);
    assert.ok(!page.received('n').includes('new 6') || page.received('n').includes('new 4'),
      `the page got new 6 without new 4: ${JSON.stringify(page.received('n'))}`);

    // Offsets of the old numbering are not honoured anywhere: the page
    // that saw the lost 5 reloads instead of resuming after the new 5.
    for (const node of cluster.nodes) {
      const back = await clients.connect(node, { name: `page back on ${node.name ?? 'a node'}`, auth: { offset: seenLast } });
      await waitUntil(() => back.statuses.length > 0, { what: 'the push:recovery status' });
      assert.equal(back.statuses[0].recovered, false);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('a publish handed out while Redis was out of reach', () => {
  const clients = new ClientPool();
  const cluster = useCluster([], { clients });

  test('once Redis is back, the pages of the other nodes, which never got it, are told to reload', async () => {
    const { dir, a, b } = await startOnSnapshotRedis(cluster, 'push-core-redis-down-');
    const onA = await clients.connect(a, { name: 'page on A' });
    const onB = await clients.connect(b, { name: 'page on B' });
    await sendOk(a.socketPath, { event: 'n', data: 1 });
    await onB.waitFor('n', (n) => n === 1);

    // Redis comes back from a snapshot with every message the nodes read:
    // nothing tells B's reader that anything is missing, but for A.
    await cluster.redis.cli('save');
    await cluster.redis.kill();
    const during = await publishVia(a, { event: 'n', data: 'while down' });
    assert.deepEqual(during, { recipients: 1, partial: true });
    assert.equal(await onA.waitFor('n', (n) => n === 'while down'), 'while down');
    await cluster.redis.start();

    await waitUntil(() => onB.statuses.length >= 2, { what: 'the page on B to be told to reload' });
    assert.deepEqual([onB.statuses[1].recovered, onB.statuses[1].replayed], [false, 0]);
    assert.deepEqual(onB.received('n'), [1]);
    assert.match(a.log, /messages were handed out while a node could not reach Redis/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

for (const { what, publish } of [
  { what: 'a broadcast', publish: { event: 'n', data: 'while down' } },
  { what: 'a private message with no recipient on that node', publish: { event: 'n', users: ['7'], data: 'while down' } },
]) {
  describe(`${what} handed out while Redis was out of reach, by a node that dies before it is back`, () => {
    const clients = new ClientPool();
    const cluster = useCluster([], { clients });

    test('a page of that node brings the news to another node, which tells every page to reload', async () => {
      const { dir, a, b } = await startOnSnapshotRedis(cluster, 'push-core-redis-down-');
      const onA = await clients.connect(a, { name: 'guest on A' });
      const onB = await clients.connect(b, { cookie: cookieFor('sid-7'), name: 'user 7 on B' });
      await sendOk(a.socketPath, { event: 'n', data: 1 });
      await onB.waitFor('n', (n) => n === 1);

      await cluster.redis.cli('save');
      await cluster.redis.kill();
      const reply = await publishVia(a, publish);
      assert.equal(reply.partial, true);
      // Every page of A gets the mark in place of an offset: with the
      // message if it was for the page, and on its own in any case.
      const { offset: mark } = await onA.waitFor('push:unnumbered');
      assert.match(mark, /^u[0-9a-f]+\.1\.[0-9a-f]+$/);
      if (!publish.users) {
        assert.equal(onA.events.find((e) => e.data === 'while down').offset, mark);
      }
      // A dies before its link is back: nothing of A's is left to tell B's
      // pages, and Redis comes back from the snapshot as it was.
      await a.stop({ signal: 'SIGKILL' });
      await cluster.redis.start();
      await waitUntil(async () => (await stats(b.socketPath)).cluster.link_up, { what: 'B to link again' });
      await sleep(1500);
      assert.equal(onB.statuses.length, 1, 'nothing told B yet');

      // A made-up mark, or one changed by the page, is not news.
      const forged = mark.replace(/\.1\./, '.2.');
      const forger = await clients.connect(b, { name: 'forging page', auth: { offset: forged } });
      await waitUntil(() => forger.statuses.length >= 1, { what: 'the forging page to be answered' });
      await sleep(1500);
      assert.equal(onB.statuses.length, 1, 'a forged mark started no epoch');

      // The page of A reconnects to B with its last offset, the mark.
      const back = await clients.connect(b, { name: 'page of A, back on B', auth: { offset: mark } });
      await waitUntil(() => back.statuses.length >= 1, { what: 'the page back on B to be answered' });
      assert.equal(back.statuses[0].recovered, false);
      await waitUntil(() => onB.statuses.length >= 2, { what: 'the page on B to be told to reload' });
      assert.deepEqual([onB.statuses[1].recovered, onB.statuses[1].replayed], [false, 0]);
      assert.deepEqual(onB.received('n'), [1]);

      // Brought again (another page of A), it is old news: no second reset.
      await clients.connect(b, { name: 'another page of A', auth: { offset: mark } });
      await sleep(1500);
      assert.equal(onB.statuses.length, 2, 'one reset per hand-out');
      fs.rmSync(dir, { recursive: true, force: true });
    });
  });
}

describe('Redis over TLS (rediss://)', () => {
  const clients = new ClientPool();
  let tls;
  let backend;
  const nodes = [];
  after(async () => {
    clients.closeAll();
    for (const node of nodes) await node.cleanup();
    await backend?.close();
    await tls?.stop();
  });

  test('nodes reach a Redis that speaks TLS only, checking its certificate, and share publishes', async () => {
    tls = await startTlsRedis();
    backend = await startAuthBackend();
    for (const name of ['node-a', 'node-b']) {
      nodes.push(await startDaemon({
        args: ['--adapter', 'redis', '--redis-url', tls.url, '--node-id', name, '--auth-url', backend.url, '--http-publish-token', TOKEN],
        env: { SSL_CERT_FILE: tls.caFile },
      }));
    }
    await waitForCluster(nodes);
    const [a, b] = nodes;
    const onB = await clients.connect(b, { name: 'guest on B' });
    await waitForCount(a.socketPath, {}, 1);
    assert.equal(await sendOk(a.socketPath, { event: 'secret', data: 'over TLS' }), 1);
    assert.equal(await onB.waitFor('secret'), 'over TLS');

    // Without the CA, the certificate is refused: the node never links.
    const untrusting = await startDaemon({ args: ['--adapter', 'redis', '--redis-url', tls.url, '--node-id', 'node-c'] });
    nodes.push(untrusting);
    await waitUntil(() => /cannot reach Redis/.test(untrusting.log), { what: 'node C to fail to reach Redis' });
    assert.equal((await stats(untrusting.socketPath)).cluster.link_up, false);
  });
});

describe('a rolling restart of every node', () => {
  const pages = [];
  const cluster = useCluster(['node-a', 'node-b', 'node-c'], {
    clients: { closeAll: () => pages.forEach((page) => page.close()) },
  });

  test('while a publisher sends 50 messages a second, every page ends with every message, once, in order', async () => {
    const running = () => cluster.nodes.filter((node) => node.running && !node.stopping);
    for (let n = 0; n < 9; n++) pages.push(new Page(`page ${n}`, running, n % 3));
    await waitUntil(() => pages.every((page) => page.connected), { what: 'every page to connect' });

    const publisher = new Publisher(running);
    const publishing = publisher.run(50);
    await sleep(1000);
    for (let at = 0; at < cluster.nodes.length; at++) {
      const old = cluster.nodes[at];
      old.stopping = true;
      await old.stop();
      cluster.nodes[at] = await cluster.startNode(`node-${'abc'[at]}`);
      await sleep(1000);
    }
    const sent = await publisher.stop(publishing);
    assert.ok(sent >= 100, `only ${sent} messages were published`);

    const expected = Array.from({ length: sent }, (_, n) => n);
    for (const page of pages) {
      await waitUntil(() => page.received.length >= sent, {
        timeoutMs: 20_000,
        what: () => `${page.name} to have all ${sent} messages (has ${page.received.length}, reconnects ${page.reconnects})`,
      });
      assert.deepEqual(page.received, expected, `${page.name}: every message once, in order`);
    }
    assert.ok(pages.some((page) => page.reconnects > 0), 'some pages moved to another node');
  });
});

/**
 * A page as the clients/js helper makes it: when its connection ends, it
 * connects again, to whichever node is up, with the last offset it saw.
 */
class Page {
  constructor(name, running, first) {
    this.name = name;
    this.running = running;
    this.received = [];
    this.offset = undefined;
    this.reconnects = -1;
    this.connected = false;
    this.closed = false;
    this.connect(first);
  }

  connect(preferred) {
    if (this.closed) return;
    const nodes = this.running();
    const node = nodes[(preferred ?? Math.floor(Math.random() * 100)) % nodes.length];
    this.reconnects += 1;
    const socket = io(node.url, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      auth: this.offset === undefined ? {} : { offset: this.offset },
    });
    this.socket = socket;
    socket.on('connect', () => { this.connected = true; });
    socket.on('tick', (n, { offset }) => {
      this.received.push(n);
      this.offset = offset;
    });
    socket.on('push:recovery', (status) => {
      if (this.offset === undefined) this.offset = status.offset;
    });
    const again = () => {
      socket.removeAllListeners();
      socket.close();
      setTimeout(() => this.connect(), 50);
    };
    socket.on('disconnect', again);
    socket.on('connect_error', again);
  }

  close() {
    this.closed = true;
    this.socket?.removeAllListeners();
    this.socket?.close();
  }
}

/**
 * Publishes 0, 1, 2, ... at a steady rate on one node's socket, moving to
 * another node when its node stops; a message the stopping node refused
 * is sent again to the next.
 */
class Publisher {
  constructor(running) {
    this.running = running;
    this.stopped = false;
    this.next = 0;
    this.id = 0;
  }

  async run(perSecond) {
    let connection = null;
    while (!this.stopped) {
      try {
        if (connection === null) {
          const nodes = this.running();
          connection = await RawConnection.open(nodes[this.next % nodes.length].socketPath);
          await connection.handshake();
        }
        const reply = await connection.call(request.publish(++this.id, { event: 'tick', data: this.next }));
        if (reply.kind !== Kind.PUBLISHED) throw new Error(JSON.stringify(reply));
        this.next += 1;
        await sleep(1000 / perSecond);
      } catch {
        connection?.destroy();
        connection = null;
        await sleep(20);
      }
    }
    connection?.destroy();
  }

  /** Stops publishing; resolves with how many were published. */
  async stop(running) {
    this.stopped = true;
    await running;
    return this.next;
  }
}

// The socket.io Admin UI against the real daemon: the npm socket.io-client
// speaking as the UI's page does (support/admin-ui.mjs) logs in to
// `/admin`, resumes with its session id, reads its config and the
// server_stats every two seconds, with the connections and traffic of real
// browsers in them; wrong credentials, guessing, publishes to `/admin`
// and foreign pages are turned away. The cluster case is in
// cluster.test.mjs, the UI's own page in Chromium in
// tests/browser/admin-ui.test.mjs.

import assert from 'node:assert/strict';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';

import {
  PASSWORD, PASSWORD_HASH, UI_FILES, USERNAME, adminUiArgs, connectUi, refusal,
} from './support/admin-ui.mjs';
import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { freePort, runBinary, startDaemon } from './support/daemon.mjs';
import { RawWebSocket } from './support/engineio.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { send, sendOk, stats } from './support/publish.mjs';
import { startRedis } from './support/redis.mjs';
import { waitUntil, withGuard } from './support/wait.mjs';

describe('Admin UI settings', () => {
  const CASES = [
    { key: 'admin_ui_username', args: ['--admin-ui-username', 'admin'], says: 'is set but admin_ui_password_hash is not' },
    { key: 'admin_ui_password_hash', args: ['--admin-ui-password-hash', PASSWORD_HASH], says: 'is set but admin_ui_username is not' },
    { key: 'admin_ui_password_hash', args: ['--admin-ui-username', 'admin', '--admin-ui-password-hash', PASSWORD], says: 'is not a bcrypt hash' },
    { key: 'admin_ui_mode', args: ['--admin-ui-mode', 'full'], says: 'the Admin UI is off' },
    { key: 'admin_ui_files', args: [...adminUiArgs(), '--admin-ui-files', UI_FILES], says: 'admin_listen is not' },
    { key: 'admin_ui_files', args: [...adminUiArgs({ adminPort: 9464 }), '--admin-ui-files', '/nonexistent'], says: 'holds no index.html' },
    { key: 'namespaces', args: [...adminUiArgs(), '--namespace', '/admin'], says: "the Admin UI's namespace" },
  ];
  for (const { key, args, says } of CASES) {
    test(`check-config ${key}: ${says}`, async () => {
      const result = await runBinary(['check-config', ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.ok(result.stderr.startsWith(`push-core: invalid value for ${key} (`), result.stderr);
      assert.ok(result.stderr.includes(says), result.stderr);
      assert.ok(!result.stderr.includes(PASSWORD), 'a password given as the hash is not echoed');
    });
  }

  test('--print-config and check-config hide the hash', async () => {
    for (const command of [['serve', '--print-config'], ['check-config']]) {
      const result = await runBinary([...command, ...adminUiArgs()]);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(result.stdout.includes('admin_ui_username = "admin"'), result.stdout);
      assert.ok(result.stdout.includes('admin_ui_password_hash = "(hidden)"'), result.stdout);
      assert.ok(!result.stdout.includes(PASSWORD_HASH), result.stdout);
    }
  });

  test('the hash can come from the environment, as the package\'s secrets file gives it', async () => {
    const result = await runBinary(['check-config', '--admin-ui-username', 'admin'], {
      env: { PUSH_CORE_ADMIN_UI_PASSWORD_HASH: PASSWORD_HASH },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(!result.stdout.includes(PASSWORD_HASH), result.stdout);
  });
});

describe('Admin UI, read-only', () => {
  let daemon;
  let adminPort;
  const clients = new ClientPool();
  const uis = [];

  before(async () => {
    adminPort = await freePort();
    daemon = await startDaemon({
      args: [...adminUiArgs({ adminPort, page: true }), '--node-id', 'node-a', '--namespace', '/chat'],
    });
  });

  after(async () => {
    for (const ui of uis) ui.close();
    clients.closeAll();
    await daemon?.cleanup();
  });

  async function ui(options) {
    const client = await connectUi(daemon, options);
    uis.push(client);
    return client;
  }

  test('without credentials, or with wrong ones, /admin answers "invalid credentials"', async () => {
    for (const auth of [
      {},
      { username: USERNAME },
      { username: USERNAME, password: 'wrong' },
      { username: 'root', password: PASSWORD },
      { username: USERNAME, password: 42 },
      { sessionId: '0123456789abcdef0123456789abcdef' },
    ]) {
      assert.equal(await refusal(daemon, auth), 'invalid credentials', JSON.stringify(auth));
    }
    const page = await scrape({ url: `http://127.0.0.1:${adminPort}` });
    assert.equal(seriesValue(page, 'push_connections_refused_total{reason="admin_ui_login"}'), 6);
  });

  test('good credentials get a session and the config of read-only mode', async () => {
    const client = await ui();
    const [session] = await client.waitFor('session');
    assert.match(session, /^[0-9a-f]{32}$/);
    const [config] = await client.waitFor('config');
    assert.deepEqual(config, { supportedFeatures: ['AGGREGATED_EVENTS'] });
    assert.ok(
      client.events.findIndex((e) => e.event === 'session') < client.events.findIndex((e) => e.event === 'config'),
      'the session comes first, as instrument() sends it',
    );

    // A reload of the UI's page comes back with the session id alone.
    const back = await ui({ auth: { sessionId: session } });
    await back.waitFor('config');
    assert.equal(back.received('session').length, 0, 'no new session for a resumed one');
  });

  test('server_stats every two seconds: the node, its connections by transport and namespace', async () => {
    const client = await ui();
    await clients.connect(daemon, { transport: 'websocket' });
    await clients.connect(daemon, { transport: 'polling' });
    await clients.connect(daemon, { transport: 'websocket', namespace: '/chat' });
    const stats = await client.statsOf('node-a', (s) => {
      const root = s.namespaces.find((ns) => ns.name === '/');
      return root?.socketsCount === 2;
    });
    assert.equal(stats.hostname, os.hostname());
    assert.equal(stats.pid, daemon.child.pid);
    assert.equal(typeof stats.uptime, 'number');
    // Three browsers and the UI, which is a client too, as instrument() counts it.
    const uiClients = uis.length;
    assert.equal(stats.clientsCount, 3 + uiClients, JSON.stringify(stats));
    assert.equal(stats.pollingClientsCount, 1, JSON.stringify(stats));
    const byName = Object.fromEntries(stats.namespaces.map((ns) => [ns.name, ns.socketsCount]));
    assert.deepEqual(byName, { '/': 2, '/chat': 1, '/admin': uiClients });
    const [first, second] = client.received('server_stats').slice(-2);
    if (second) assert.ok(second.uptime > first.uptime);
    clients.closeAll();
  });

  test('aggregatedEvents count connections, deliveries and their bytes, and events from browsers', async () => {
    const client = await ui();
    await client.statsOf('node-a');
    const before = client.totals();
    const browsers = [];
    for (let i = 0; i < 3; i++) browsers.push(await clients.connect(daemon));
    const data = { text: 'hello admin' };
    assert.equal(await sendOk(daemon.socketPath, { event: 'news', data }), 3);
    await Promise.all(browsers.map((b) => b.waitFor('news')));
    browsers[0].socket.emit('chatter', { say: 'hi' });
    browsers[0].close();
    const bytes = JSON.stringify(data).length;
    await client.waitForTotals((totals) =>
      (totals.rawConnection ?? 0) - (before.rawConnection ?? 0) >= 3
      && (totals.rawDisconnection ?? 0) - (before.rawDisconnection ?? 0) >= 1
      && (totals.packetsOut ?? 0) - (before.packetsOut ?? 0) === 3
      && (totals.bytesOut ?? 0) - (before.bytesOut ?? 0) === 3 * bytes
      && (totals.packetsIn ?? 0) - (before.packetsIn ?? 0) === 1
      && (totals.bytesIn ?? 0) - (before.bytesIn ?? 0) === JSON.stringify(['chatter', { say: 'hi' }]).length,
    'the traffic of three connects, one publish to three, one event and one disconnect');
    for (const stats of client.received('server_stats')) {
      for (const entry of stats.aggregatedEvents) {
        assert.equal(entry.timestamp % 1000, 0, 'each entry is one second');
        assert.ok(entry.count > 0);
      }
    }
    clients.closeAll();
  });

  test('publishers cannot reach /admin, and the site\'s figures leave it out', async () => {
    const client = await ui();
    const result = await send(daemon.socketPath, { namespace: '/admin', event: 'server_stats', data: { serverId: 'forged' } });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /namespace "\/admin" is the socket\.io Admin UI's/);
    const asked = await runBinary(['online', '--socket', daemon.socketPath, '--namespace', '/admin', '42']);
    assert.notEqual(asked.code, 0);
    assert.match(asked.stderr, /Admin UI/);
    await client.statsOf('node-a', () => true, 'a genuine server_stats after the forged publish');
    assert.ok(client.received('server_stats').every((s) => s.serverId === 'node-a'));
    const site = await stats(daemon.socketPath);
    assert.equal(site.namespaces['/admin'], undefined, JSON.stringify(site));
    assert.equal(site.connections, 0, 'the UIs are not the site\'s connections');
    const metrics = await scrape({ url: `http://127.0.0.1:${adminPort}` });
    assert.ok(!metrics.includes('namespace="/admin"'), metrics);
  });

  test('the UI\'s page is served on the admin listener, not on the public one', async () => {
    const index = await fetch(`http://127.0.0.1:${adminPort}/admin-ui/`);
    assert.equal(index.status, 200);
    const html = await index.text();
    assert.match(html, /<title>Socket\.IO Admin UI<\/title>/);
    assert.equal(index.headers.get('content-security-policy'), "frame-ancestors 'none'");
    const script = html.match(/src="(js\/app\.[0-9a-f]+\.js)"/)[1];
    const app = await fetch(`http://127.0.0.1:${adminPort}/admin-ui/${script}`);
    assert.equal(app.status, 200);
    assert.match(app.headers.get('content-type'), /^application\/javascript/);
    const again = await fetch(`http://127.0.0.1:${adminPort}/admin-ui/${script}`, {
      headers: { 'if-none-match': app.headers.get('etag') },
    });
    assert.equal(again.status, 304);
    const redirect = await fetch(`http://127.0.0.1:${adminPort}/admin-ui`, { redirect: 'manual' });
    assert.equal(redirect.headers.get('location'), '/admin-ui/');
    assert.equal((await fetch(`${daemon.url}/admin-ui/`)).status, 404);
  });

  test('the hash and the password never reach the log', async () => {
    await refusal(daemon, { username: USERNAME, password: 'not the password' });
    (await ui()).close();
    assert.ok(!daemon.log.includes(PASSWORD_HASH));
    assert.ok(!daemon.log.includes(PASSWORD));
    assert.ok(!daemon.log.includes('not the password'));
    assert.match(daemon.log, /refused an Admin UI login/);
  });
});

describe('Admin UI and the site\'s allowed origins', () => {
  let daemon;
  let adminPort;
  const clients = new ClientPool();

  before(async () => {
    adminPort = await freePort();
    daemon = await startDaemon({
      args: [...adminUiArgs({ adminPort, page: true }), '--allowed-origin', 'https://www.example.com'],
    });
  });

  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
  });

  const pageOrigin = () => `http://127.0.0.1:${adminPort}`;

  for (const transport of ['websocket', 'polling']) {
    test(`the page served on the admin listener joins /admin with no origin setting (${transport})`, async () => {
      const client = await connectUi(daemon, { transport, headers: { origin: pageOrigin() } });
      await client.waitFor('config');
      client.close();
    });
  }

  test('the page\'s origin may join /admin only, never a site namespace', async () => {
    const error = await clients.refused(daemon, { origin: pageOrigin(), cookie: cookieFor('sid-42') });
    assert.equal(error.message, 'origin_not_allowed');
  });

  test('another port of the same host is a foreign page', async () => {
    const message = await refusal(daemon, { username: USERNAME, password: PASSWORD }, {
      headers: { origin: `http://127.0.0.1:${adminPort + 1}` },
    });
    assert.notEqual(message, 'invalid credentials');
  });

  test('a polling preflight from the page is answered for it', async () => {
    const response = await fetch(`${daemon.url}/socket.io/?EIO=4&transport=polling`, {
      method: 'OPTIONS',
      headers: { origin: pageOrigin(), 'access-control-request-method': 'GET' },
    });
    assert.equal(response.headers.get('access-control-allow-origin'), pageOrigin());
    assert.equal(response.headers.get('access-control-allow-credentials'), 'true');
  });
});

describe('Admin UI login guessing', () => {
  let daemon;

  before(async () => {
    daemon = await startDaemon({ args: [...adminUiArgs(), '--handshakes-per-ip-per-minute', '4'] });
  });

  after(() => daemon?.cleanup());

  test('every try spends one of the address\'s handshakes, even over one engine.io session', async () => {
    // One engine.io session (one handshake), then /admin joined again and
    // again over it, as a guesser would to dodge the handshake limit. The
    // daemon trusts loopback as a proxy, so the guesser's address is the
    // one it forwards.
    const guesser = await RawWebSocket.open(daemon, { join: false, headers: { 'x-forwarded-for': '203.0.113.9' } });
    try {
      const attempt = async (auth) => {
        guesser.send(`40/admin,${JSON.stringify(auth)}`);
        const answer = await guesser.next((m) => m.startsWith('40/admin,') || m.startsWith('44/admin,'));
        return answer.startsWith('40/admin,') ? 'connected' : JSON.parse(answer.slice('44/admin,'.length)).message;
      };
      const answers = [];
      for (let i = 1; i <= 3; i++) answers.push(await attempt({ username: USERNAME, password: `guess ${i}` }));
      // The budget of 4 is spent: the handshake and three guesses.
      answers.push(await attempt({ username: USERNAME, password: PASSWORD }));
      assert.deepEqual(answers, ['invalid credentials', 'invalid credentials', 'invalid credentials', 'handshake_rate_exceeded']);
    } finally {
      guesser.terminate();
    }
    // Another address still logs in.
    const other = await connectUi(daemon, { headers: { 'x-forwarded-for': '203.0.113.10' } });
    other.close();
  });
});

describe('Admin UI, full mode', () => {
  let daemon;
  let backend;
  let ui;
  const clients = new ClientPool();

  before(async () => {
    backend = await startAuthBackend();
    daemon = await startDaemon({
      args: [...adminUiArgs({ mode: 'full' }), '--node-id', 'node-f', '--auth-url', backend.url],
    });
    ui = await connectUi(daemon);
  });

  after(async () => {
    ui?.close();
    clients.closeAll();
    await daemon?.cleanup();
    await backend?.close();
  });

  test('the config offers the write features and every connection', async () => {
    const [config] = await ui.waitFor('config');
    assert.deepEqual(config.supportedFeatures.sort(), [
      'AGGREGATED_EVENTS', 'ALL_EVENTS', 'DISCONNECT', 'EMIT', 'JOIN', 'LEAVE', 'MDISCONNECT', 'MJOIN', 'MLEAVE',
    ]);
    const [sockets] = await ui.waitFor('all_sockets');
    assert.ok(sockets.some((s) => s.nsp === '/admin'), JSON.stringify(sockets));
  });

  test('a new connection is shown with its rooms, never its cookies', async () => {
    const browser = await clients.connect(daemon, { cookie: cookieFor('sid-42'), transport: 'polling' });
    const [socket] = await ui.waitFor('socket_connected', (s) => s.nsp === '/' && s.rooms.includes('user:42'));
    assert.equal(socket.transport, 'polling');
    assert.ok(socket.rooms.includes('room:group:7'), JSON.stringify(socket));
    assert.equal(socket.handshake.address, '127.0.0.1');
    assert.equal(socket.handshake.query.transport, 'polling');
    assert.ok(!JSON.stringify(socket).includes('sid-42'), JSON.stringify(socket));
    browser.close();
    await ui.waitFor('socket_disconnected', (nsp, id) => nsp === '/' && id === socket.id);
  });

  test('join and leave act on site rooms, and a publish to the room follows', async () => {
    const browser = await clients.connect(daemon, { cookie: cookieFor('sid-7') });
    const [socket] = await ui.waitFor('socket_connected', (s) => s.rooms.includes('user:7'));
    ui.socket.emit('join', '/', 'news', socket.id);
    await ui.waitFor('room_joined', (nsp, room, id) => room === 'room:news' && id === socket.id);
    assert.equal(await sendOk(daemon.socketPath, { event: 'headline', rooms: ['news'], data: 1 }), 1);
    await browser.waitFor('headline');

    // A user's private room cannot be joined from the UI: the name is taken
    // as a site room.
    ui.socket.emit('join', '/', 'user:42', socket.id);
    await ui.waitFor('room_joined', (nsp, room) => room === 'room:user:42');
    assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: 1 }), 0);

    ui.socket.emit('leave', '/', 'room:news', socket.id);
    await ui.waitFor('room_left', (nsp, room, id) => room === 'room:news' && id === socket.id);
    assert.equal(await sendOk(daemon.socketPath, { event: 'headline', rooms: ['news'], data: 2 }), 0);
    browser.close();
  });

  test('emit publishes to a room, and to one connection by its id', async () => {
    const browser = await clients.connect(daemon, { cookie: cookieFor('sid-9') });
    const [socket] = await ui.waitFor('socket_connected', (s) => s.rooms.includes('user:9'));
    ui.socket.emit('emit', '/', 'user:9', 'from-admin', { text: 'to user 9' });
    assert.deepEqual(await browser.waitFor('from-admin'), { text: 'to user 9' });
    ui.socket.emit('emit', '/', socket.id, 'just-you', 'hi');
    assert.equal(await browser.waitFor('just-you'), 'hi');
    // The same checks as a publish: socket.io's own events are refused.
    ui.socket.emit('emit', '/', null, 'disconnect', 'bye');
    ui.socket.emit('emit', '/', null, 'after', 'still here');
    assert.equal(await browser.waitFor('after'), 'still here');
    assert.equal(browser.received('disconnect').length, 0);
    browser.close();
  });

  test('_disconnect ends a connection', async () => {
    const seen = ui.received('socket_connected').length;
    const browser = await clients.connect(daemon);
    await waitUntil(() => ui.received('socket_connected').length > seen, { what: 'the UI to see the new connection' });
    const socket = ui.received('socket_connected').at(-1);
    const gone = new Promise((resolve) => browser.socket.once('disconnect', resolve));
    ui.socket.emit('_disconnect', '/', false, socket.id);
    assert.equal(await withGuard(gone, 'the browser to be disconnected'), 'io server disconnect');
    await waitUntil(async () => (await stats(daemon.socketPath)).connections === 0, { what: 'the connection to go' });
  });
});

describe('Admin UI in a cluster', () => {
  let redis;
  const nodes = [];
  const clients = new ClientPool();
  const uis = [];

  before(async () => {
    redis = await startRedis();
    for (const name of ['node-a', 'node-b']) {
      nodes.push(await startDaemon({
        args: [...adminUiArgs(), '--adapter', 'redis', '--redis-url', redis.url, '--node-id', name, '--recovery-window', '0'],
      }));
    }
    await waitUntil(async () => {
      for (const node of nodes) {
        const { cluster } = await stats(node.socketPath);
        if (!cluster?.link_up || cluster.partial) return false;
      }
      return true;
    }, { what: 'the two nodes to reach Redis' });
  });

  after(async () => {
    for (const ui of uis) ui.close();
    clients.closeAll();
    for (const node of nodes) await node.cleanup();
    await redis?.kill();
  });

  test('a UI on either node receives every node\'s server_stats, one serverId each', async () => {
    const [a, b] = nodes;
    await clients.connect(b);
    await clients.connect(b, { transport: 'polling' });
    for (const node of nodes) {
      const ui = await connectUi(node);
      uis.push(ui);
      const ofB = await ui.statsOf('node-b', (s) => s.namespaces.find((ns) => ns.name === '/')?.socketsCount === 2);
      assert.equal(ofB.pollingClientsCount, 1, JSON.stringify(ofB));
      const ofA = await ui.statsOf('node-a');
      assert.equal(ofA.namespaces.find((ns) => ns.name === '/').socketsCount, 0, JSON.stringify(ofA));
      assert.notEqual(ofA.pid, ofB.pid);
    }
    assert.equal(a.child.pid, (await uis[0].statsOf('node-a')).pid);
  });

  test('a publish on one node counts its deliveries on every node in that node\'s figures', async () => {
    const [a] = nodes;
    const ui = uis[0];
    const before = ui.totals('node-a');
    assert.equal(await sendOk(a.socketPath, { event: 'hello', data: 'cluster' }), 2);
    await ui.waitForTotals((totals) => (totals.packetsOut ?? 0) - (before.packetsOut ?? 0) === 2,
      'node-a to count the publish it took, delivered on node-b', 'node-a');
  });
});

// The admin listener (--admin-listen): /metrics, /healthz and /readyz apart
// from the public listener; its /metrics read by a real Prometheus parser
// (the prometheus_client Python package) after known traffic; and the
// shipped Grafana dashboard checked against that real scrape.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { freePort, repoRoot, startDaemon } from './support/daemon.mjs';
import { parsePrometheus, sampleValue, seriesNames } from './support/prometheus.mjs';
import { body, frame, Kind, RawConnection, sendOk } from './support/publish.mjs';

/** Families the page must declare, with the type the parser reads. */
const FAMILIES = {
  push_connections: 'gauge',
  push_users_online: 'gauge',
  push_publishes: 'counter',
  push_deliveries: 'counter',
  push_delivered_bytes: 'counter',
  push_deliveries_dropped: 'counter',
  push_slow_consumer_catch_ups_started: 'counter',
  push_slow_consumer_catch_ups: 'counter',
  push_missed_notices: 'counter',
  push_publishers_connected: 'gauge',
  push_publishers_accepted: 'counter',
  push_protocol_errors: 'counter',
  push_auth_calls: 'counter',
  push_auth_cache_hits: 'counter',
  push_auth_merged: 'counter',
  push_auth_retries: 'counter',
  push_auth_retries_exhausted: 'counter',
  push_auth_latency_seconds: 'histogram',
  push_connections_opened: 'counter',
  push_connections_closed: 'counter',
  push_connections_refused: 'counter',
  push_client_events_ignored: 'counter',
  push_client_event_bytes: 'counter',
  push_client_flood_disconnects: 'counter',
  push_rooms_truncated: 'counter',
  push_forwarding_header_problems: 'counter',
  push_handshake_rate_addresses: 'gauge',
  push_handshake_rate_unremembered: 'counter',
  push_config_reloads: 'counter',
  push_cluster_partial_answers: 'counter',
  push_uptime_seconds: 'gauge',
};

async function get(url) {
  const response = await fetch(url);
  return { status: response.status, text: await response.text(), contentType: response.headers.get('content-type') };
}

describe('the admin listener', () => {
  let backend;
  let daemon;
  let admin;
  let families;
  const clients = new ClientPool();

  before(async () => {
    // The site fails (500) for one cookie: an auth failure to count.
    backend = await startAuthBackend({
      respond: (req, res) => {
        if (!(req.headers.cookie ?? '').includes('sid=broken')) return false;
        res.writeHead(500);
        res.end('oops');
        return true;
      },
    });
    const adminPort = await freePort();
    admin = `http://127.0.0.1:${adminPort}`;
    daemon = await startDaemon({
      args: ['--admin-listen', `127.0.0.1:${adminPort}`, '--auth-url', backend.url,
        '--allowed-origin', 'https://app.example', '--http-publish-token', 't'.repeat(40)],
    });
    // Known traffic: two tabs of user 42, a visitor the site fails to
    // identify, a refused origin, two publishes and a protocol error.
    const tab1 = await clients.connect(daemon, { transport: 'websocket', cookie: cookieFor('sid-42') });
    const tab2 = await clients.connect(daemon, { transport: 'polling', cookie: cookieFor('sid-42') });
    const unknown = await clients.connect(daemon, { transport: 'websocket', cookie: cookieFor('broken') });
    const refused = await fetch(`${daemon.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'https://evil.example' } });
    await refused.text();
    assert.equal(refused.status, 403);
    assert.equal(await sendOk(daemon.socketPath, { event: 'all', data: 1 }), 3);
    assert.equal(await sendOk(daemon.socketPath, { event: 'dm', users: ['42'], data: 2 }), 2);
    await Promise.all([tab1.waitFor('all'), tab2.waitFor('all'), unknown.waitFor('all'), tab1.waitFor('dm')]);
    const publisher = await RawConnection.open(daemon.socketPath);
    await publisher.handshake();
    assert.equal((await publisher.call(frame(body(0x7e, 1)))).kind, Kind.ERROR);
    publisher.destroy();

    const scrape = await get(`${admin}/metrics`);
    assert.equal(scrape.status, 200);
    assert.match(scrape.contentType, /^text\/plain; version=0\.0\.4/);
    families = parsePrometheus(scrape.text);
  });
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
    await backend?.close();
  });

  test('serves /healthz and /readyz', async () => {
    assert.deepEqual(await get(`${admin}/healthz`).then((r) => [r.status, r.text]), [200, 'ok\n']);
    assert.deepEqual(await get(`${admin}/readyz`).then((r) => [r.status, r.text]), [200, 'ready\n']);
  });

  test('serves nothing a browser or a publisher uses', async () => {
    assert.equal((await get(`${admin}/socket.io/?EIO=4&transport=polling`)).status, 404);
    const api = await fetch(`${admin}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${'t'.repeat(40)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ event: 'x', data: 1 }),
    });
    await api.text();
    assert.equal(api.status, 404);
  });

  test('takes /metrics off the public listener, which keeps /healthz and /readyz', async () => {
    assert.equal((await get(`${daemon.url}/metrics`)).status, 404);
    assert.equal((await get(`${daemon.url}/healthz`)).status, 200);
    assert.equal((await get(`${daemon.url}/readyz`)).status, 200);
  });

  test('/metrics declares every documented family with its type and help', () => {
    for (const [name, type] of Object.entries(FAMILIES)) {
      assert.equal(families.get(name)?.type, type, `type of ${name}`);
      assert.ok(families.get(name).documentation.length > 0, `help of ${name}`);
    }
    const undocumented = [...families.keys()].filter((name) => !(name in FAMILIES));
    assert.deepEqual(undocumented, [], 'families this test (and docs/operations.md) do not know');
  });

  test('docs/operations.md documents every family', () => {
    const doc = fs.readFileSync(path.join(repoRoot, 'docs/operations.md'), 'utf8');
    for (const [name, type] of Object.entries(FAMILIES)) {
      const series = type === 'counter' ? `${name}_total` : name;
      assert.ok(doc.includes(`| \`${series}\` | ${type} |`), `no row for ${series} (${type}) in docs/operations.md`);
    }
  });

  test('/metrics counts the traffic', () => {
    const value = (name, labels) => sampleValue(families, name, labels);
    assert.equal(value('push_connections', { namespace: '/', transport: 'websocket', protocol: '5' }), 2);
    assert.equal(value('push_connections', { namespace: '/', transport: 'polling', protocol: '5' }), 1);
    assert.equal(value('push_users_online', { namespace: '/' }), 1);
    assert.equal(value('push_publishes_total'), 2);
    assert.equal(value('push_deliveries_total'), 5);
    assert.equal(value('push_auth_calls_total', { outcome: 'user' }), 1);
    assert.equal(value('push_auth_calls_total', { outcome: 'bad_status' }), 1, 'the auth failure');
    assert.equal(value('push_auth_calls_total', { outcome: 'timeout' }), 0);
    assert.equal(value('push_auth_latency_seconds_count'), 2);
    assert.equal(value('push_auth_latency_seconds_bucket', { le: '+Inf' }), 2);
    assert.equal(value('push_connections_refused_total', { reason: 'origin_not_allowed' }), 1);
    assert.equal(value('push_protocol_errors_total', { code: 'unknown_operation' }), 1);
    assert.equal(value('push_publishers_accepted_total'), 3);
    assert.ok(value('push_uptime_seconds') >= 0);
  });

  test('every series the Grafana dashboard queries is on a real scrape', () => {
    const dashboard = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs/grafana/push-core.json'), 'utf8'));
    const queries = [];
    const walk = (node) => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') {
        if (typeof node.expr === 'string') queries.push(node.expr);
        Object.values(node).forEach(walk);
      }
    };
    walk(dashboard);
    assert.ok(queries.length >= 8, `the dashboard has ${queries.length} queries`);
    const served = seriesNames(families);
    for (const query of queries) {
      const names = query.match(/\bpush_[a-z0-9_]+/g) ?? [];
      assert.ok(names.length > 0, `${query} queries no push-core series`);
      for (const name of names) assert.ok(served.has(name), `${name} (in ${query}) is not on /metrics`);
    }
  });
});

// /metrics in the Prometheus text format: the documented families, their
// values after known activity, and the format's rules.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { startDaemon } from './support/daemon.mjs';
import { body, frame, Kind, RawConnection, sendOk } from './support/publish.mjs';
import { waitUntil } from './support/wait.mjs';

const FAMILIES = {
  push_connections: 'gauge',
  push_users_online: 'gauge',
  push_publishes_total: 'counter',
  push_deliveries_total: 'counter',
  push_auth_calls_total: 'counter',
  push_auth_latency_seconds: 'histogram',
  push_protocol_errors_total: 'counter',
  push_connections_refused_total: 'counter',
};

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$/;

/** Parses the exposition into { help, type, samples: Map('name{labels}' -> number), lines }. */
function parse(text) {
  const help = new Map();
  const type = new Map();
  const samples = new Map();
  const lines = text.split('\n').slice(0, -1);
  for (const line of lines) {
    if (line === '') continue;
    let m;
    if ((m = /^# HELP (\S+) (.*)$/.exec(line))) {
      assert.ok(!help.has(m[1]), `a second HELP for ${m[1]}`);
      help.set(m[1], m[2]);
    } else if ((m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      assert.ok(!type.has(m[1]), `a second TYPE for ${m[1]}`);
      type.set(m[1], m[2]);
    } else if (line.startsWith('#')) {
      // a comment
    } else {
      m = SAMPLE.exec(line);
      assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
      const key = `${m[1]}${m[2] ?? ''}`;
      assert.ok(!samples.has(key), `a second sample for ${key}`);
      samples.set(key, Number(m[3]));
    }
  }
  return { help, type, samples, lines };
}

/** The family a line belongs to (histogram series map to their family). */
function familyOf(line, types) {
  const m = /^# (?:HELP|TYPE) (\S+)/.exec(line) ?? /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
  const name = m[1];
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && ['histogram', 'summary'].includes(types.get(base))) return base;
  }
  return name;
}

describe('/metrics', () => {
  let backend;
  let daemon;
  let text;
  let contentType;
  const clients = new ClientPool();

  before(async () => {
    backend = await startAuthBackend();
    daemon = await startDaemon({ args: ['--auth-url', backend.url, '--allowed-origin', 'https://app.example'] });
    // Known activity: two tabs of user 42 (one auth call, one cache hit), a
    // logged-out visitor (a guest answer), a refused origin, two publishes
    // reaching 3 + 2 connections, and one protocol error.
    const tab1 = await clients.connect(daemon, { transport: 'websocket', cookie: cookieFor('sid-42') });
    const tab2 = await clients.connect(daemon, { transport: 'polling', cookie: cookieFor('sid-42') });
    const visitor = await clients.connect(daemon, { transport: 'polling', cookie: cookieFor('sid-nobody') });
    const refused = await fetch(`${daemon.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'https://evil.example' } });
    await refused.text();
    assert.equal(refused.status, 403);
    assert.equal(await sendOk(daemon.socketPath, { event: 'all', data: 1 }), 3);
    assert.equal(await sendOk(daemon.socketPath, { event: 'dm', users: ['42'], data: 2 }), 2);
    await Promise.all([tab1.waitFor('all'), tab2.waitFor('all'), visitor.waitFor('all'), tab1.waitFor('dm'), tab2.waitFor('dm')]);
    const publisher = await RawConnection.open(daemon.socketPath);
    await publisher.handshake();
    assert.equal((await publisher.call(frame(body(0x7e, 1)))).kind, Kind.ERROR);
    publisher.destroy();

    const response = await fetch(`${daemon.url}/metrics`);
    assert.equal(response.status, 200);
    contentType = response.headers.get('content-type');
    text = await response.text();
  });
  after(async () => {
    clients.closeAll();
    await daemon?.cleanup();
    await backend?.close();
  });

  test('is served as the Prometheus text format, version 0.0.4', () => {
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    assert.ok(text.endsWith('\n'), 'the last line ends with a line feed');
    parse(text); // every line is a HELP, TYPE, comment or sample line
  });

  test('declares every documented family with its type and help', () => {
    const { help, type } = parse(text);
    for (const [family, kind] of Object.entries(FAMILIES)) {
      assert.equal(type.get(family), kind, `TYPE of ${family}`);
      assert.ok(help.get(family)?.length > 0, `HELP of ${family}`);
    }
  });

  test('reports connections per namespace and transport, and users online', () => {
    const { samples } = parse(text);
    assert.equal(samples.get('push_connections{namespace="/",transport="websocket"}'), 1);
    assert.equal(samples.get('push_connections{namespace="/",transport="polling"}'), 2);
    assert.equal(samples.get('push_users_online{namespace="/"}'), 1);
  });

  test('counts publishes and deliveries', () => {
    const { samples } = parse(text);
    assert.equal(samples.get('push_publishes_total'), 2);
    assert.equal(samples.get('push_deliveries_total'), 5);
  });

  test('counts auth calls by outcome, with a latency histogram', () => {
    const { samples } = parse(text);
    assert.equal(samples.get('push_auth_calls_total{outcome="user"}'), 1);
    assert.equal(samples.get('push_auth_calls_total{outcome="guest"}'), 1);
    for (const failure of ['timeout', 'unreachable', 'bad_status', 'bad_body']) {
      assert.equal(samples.get(`push_auth_calls_total{outcome="${failure}"}`), 0, failure);
    }
    const buckets = [...samples.entries()]
      .filter(([key]) => key.startsWith('push_auth_latency_seconds_bucket{'))
      .map(([key, value]) => [/le="([^"]+)"/.exec(key)[1], value]);
    assert.ok(buckets.length >= 2, 'several buckets');
    assert.deepEqual(buckets.at(-1), ['+Inf', 2]);
    const bounds = buckets.slice(0, -1).map(([le]) => Number(le));
    assert.deepEqual(bounds, [...bounds].sort((a, b) => a - b), 'bucket bounds ascend');
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(buckets[i][1] >= buckets[i - 1][1], 'buckets are cumulative');
    }
    assert.equal(samples.get('push_auth_latency_seconds_count'), 2);
    assert.ok(samples.get('push_auth_latency_seconds_sum') >= 0);
  });

  test('counts protocol errors by code and refused connections by reason', () => {
    const { samples } = parse(text);
    assert.equal(samples.get('push_protocol_errors_total{code="unknown_operation"}'), 1);
    assert.equal(samples.get('push_connections_refused_total{reason="origin_not_allowed"}'), 1);
    assert.equal(samples.get('push_connections_refused_total{reason="unauthorized"}'), 0);
  });

  test('follows the changes: closed connections leave the gauges', async () => {
    clients.closeAll();
    const { samples } = await waitUntil(async () => {
      const parsed = parse(await (await fetch(`${daemon.url}/metrics`)).text());
      const open = parsed.samples.get('push_connections{namespace="/",transport="websocket"}')
        + parsed.samples.get('push_connections{namespace="/",transport="polling"}');
      return open === 0 ? parsed : null;
    }, { what: 'the connection gauges to drop to 0' });
    assert.equal(samples.get('push_users_online{namespace="/"}'), 0);
    assert.equal(samples.get('push_publishes_total'), 2, 'counters do not go down');
  });

  // The text format requires that "all lines for a given metric must be
  // provided as one single group, with the optional HELP and TYPE lines
  // first" (Prometheus exposition formats, "Grouping and sorting").
  test('keeps each family in one group, HELP and TYPE first', () => {
    const { type, lines } = parse(text);
    const seen = new Set();
    let current = null;
    let inSamples = false;
    for (const line of lines) {
      if (line === '' || (line.startsWith('#') && !/^# (HELP|TYPE) /.test(line))) continue;
      const family = familyOf(line, type);
      if (family !== current) {
        assert.ok(!seen.has(family), `the lines of ${family} are split: ${JSON.stringify(line)} comes after another family's lines`);
        seen.add(family);
        current = family;
        inSamples = false;
      }
      if (line.startsWith('#')) {
        assert.ok(!inSamples, `${JSON.stringify(line)} comes after samples of ${family}`);
      } else {
        inSamples = true;
      }
    }
  });
});

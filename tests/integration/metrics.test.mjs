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

/**
 * The series names each type of family has, as suffixes of the family name
 * (Prometheus exposition formats, "Histograms and summaries"). A counter's
 * family name is the series name, `_total` included.
 */
const SERIES_SUFFIXES = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

const METRIC_NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${METRIC_NAME})(?:\\{(.*)\\})? (\\S+)(?: -?[0-9]+)?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/;
const VALUE = /^(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf)$/;

/** The labels between a sample's braces, as { name: value }, unescaped. */
function parseLabels(text, line) {
  const labels = {};
  let rest = text;
  while (rest !== '') {
    const m = LABEL.exec(rest);
    assert.ok(m, `bad labels in ${JSON.stringify(line)}`);
    assert.ok(!(m[1] in labels), `label ${m[1]} twice in ${JSON.stringify(line)}`);
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    rest = rest.slice(m[0].length);
  }
  return labels;
}

/** Whether two label sets are the same, in any order. */
function sameLabels(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

/**
 * Parses the exposition into { families, lines }. `families` maps each
 * family declared by a `# TYPE` line to { type, help, samples }, and each
 * sample { name, labels, value } belongs to the one family whose name plus
 * one of its type's suffixes is exactly the sample's name: so
 * `push_connections_refused_total` never counts as `push_connections`. A
 * sample no declared family claims belongs to an untyped family of its own
 * name, with no `type`.
 */
function parse(text) {
  const lines = text.split('\n').slice(0, -1);
  const families = new Map();
  const family = (name) => {
    if (!families.has(name)) families.set(name, { type: undefined, help: undefined, samples: [] });
    return families.get(name);
  };
  // Declarations first: a sample's family is known from its TYPE line.
  for (const line of lines) {
    let m;
    if ((m = new RegExp(`^# HELP (${METRIC_NAME}) (.*)$`).exec(line))) {
      assert.equal(family(m[1]).help, undefined, `a second HELP for ${m[1]}`);
      family(m[1]).help = m[2];
    } else if ((m = new RegExp(`^# TYPE (${METRIC_NAME}) (\\S+)$`).exec(line))) {
      assert.ok(m[2] in SERIES_SUFFIXES, `unknown type in ${JSON.stringify(line)}`);
      assert.equal(family(m[1]).type, undefined, `a second TYPE for ${m[1]}`);
      family(m[1]).type = m[2];
    }
  }
  const owners = new Map(); // series name -> family name
  for (const [name, { type }] of families) {
    for (const suffix of SERIES_SUFFIXES[type ?? 'untyped']) {
      const series = name + suffix;
      assert.ok(!owners.has(series), `${series} could belong to ${owners.get(series)} or ${name}`);
      owners.set(series, name);
    }
  }
  for (const line of lines) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    assert.match(m[3], VALUE, `not a number in ${JSON.stringify(line)}`);
    const sample = { name: m[1], labels: parseLabels(m[2] ?? '', line), value: Number(m[3]) };
    const owner = owners.get(sample.name) ?? sample.name;
    owners.set(sample.name, owner);
    const { samples } = family(owner);
    assert.ok(
      !samples.some((other) => other.name === sample.name && sameLabels(other.labels, sample.labels)),
      `a second sample for ${line}`,
    );
    samples.push(sample);
  }
  return { families, lines, familyOfSeries: (name) => owners.get(name) ?? name };
}

/** The value of series `name` with exactly `labels`, or undefined. */
function value({ families, familyOfSeries }, name, labels = {}) {
  const samples = families.get(familyOfSeries(name))?.samples ?? [];
  return samples.find((sample) => sample.name === name && sameLabels(sample.labels, labels))?.value;
}

/** The family a HELP, TYPE or sample line belongs to. */
function familyOf(line, parsed) {
  const declared = new RegExp(`^# (?:HELP|TYPE) (${METRIC_NAME})`).exec(line);
  if (declared) return declared[1];
  return parsed.familyOfSeries(SAMPLE.exec(line)[1]);
}

describe('the exposition parser of these tests', () => {
  test('tells families apart by their exact names', () => {
    const parsed = parse([
      '# TYPE push_connections gauge',
      'push_connections{transport="polling",namespace="/"} 2',
      '# TYPE push_connections_refused_total counter',
      'push_connections_refused_total{reason="unauthorized"} 7',
      '# TYPE push_auth_latency_seconds histogram',
      'push_auth_latency_seconds_bucket{le="+Inf"} 3',
      'push_auth_latency_seconds_count 3',
      'push_connections_total 9',
      '',
    ].join('\n'));
    assert.deepEqual(
      parsed.families.get('push_connections').samples.map((sample) => sample.name),
      ['push_connections'],
    );
    assert.equal(value(parsed, 'push_connections', { namespace: '/', transport: 'polling' }), 2);
    assert.equal(value(parsed, 'push_connections', { reason: 'unauthorized' }), undefined);
    assert.equal(value(parsed, 'push_connections_refused_total', { reason: 'unauthorized' }), 7);
    assert.equal(parsed.familyOfSeries('push_auth_latency_seconds_count'), 'push_auth_latency_seconds');
    // A series no TYPE line declares is a family of its own, untyped.
    assert.equal(parsed.families.get('push_connections_total').type, undefined);
  });
});

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
    const { families } = parse(text);
    for (const [name, type] of Object.entries(FAMILIES)) {
      assert.equal(families.get(name)?.type, type, `TYPE of ${name}`);
      assert.ok(families.get(name).help?.length > 0, `HELP of ${name}`);
    }
  });

  test('declares a TYPE for every sample it serves', () => {
    const { families } = parse(text);
    for (const [name, { type, samples }] of families) {
      assert.ok(type !== undefined, `${samples.map((s) => s.name).join(', ')} served with no TYPE line for ${name}`);
    }
  });

  test('reports connections per namespace and transport, and users online', () => {
    const parsed = parse(text);
    assert.equal(value(parsed, 'push_connections', { namespace: '/', transport: 'websocket', protocol: '5' }), 1);
    assert.equal(value(parsed, 'push_connections', { namespace: '/', transport: 'polling', protocol: '5' }), 2);
    assert.equal(value(parsed, 'push_users_online', { namespace: '/' }), 1);
  });

  test('counts publishes and deliveries', () => {
    const parsed = parse(text);
    assert.equal(value(parsed, 'push_publishes_total'), 2);
    assert.equal(value(parsed, 'push_deliveries_total'), 5);
  });

  test('counts auth calls by outcome, with a latency histogram', () => {
    const parsed = parse(text);
    assert.equal(value(parsed, 'push_auth_calls_total', { outcome: 'user' }), 1);
    assert.equal(value(parsed, 'push_auth_calls_total', { outcome: 'guest' }), 1);
    for (const failure of ['timeout', 'unreachable', 'bad_status', 'bad_body']) {
      assert.equal(value(parsed, 'push_auth_calls_total', { outcome: failure }), 0, failure);
    }
    const histogram = parsed.families.get('push_auth_latency_seconds').samples;
    const buckets = histogram
      .filter((sample) => sample.name === 'push_auth_latency_seconds_bucket')
      .map((sample) => [sample.labels.le, sample.value]);
    assert.ok(buckets.length >= 2, 'several buckets');
    assert.deepEqual(buckets.at(-1), ['+Inf', 2]);
    const bounds = buckets.slice(0, -1).map(([le]) => Number(le));
    assert.deepEqual(bounds, [...bounds].sort((a, b) => a - b), 'bucket bounds ascend');
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(buckets[i][1] >= buckets[i - 1][1], 'buckets are cumulative');
    }
    assert.equal(value(parsed, 'push_auth_latency_seconds_count'), 2);
    assert.ok(value(parsed, 'push_auth_latency_seconds_sum') >= 0);
  });

  test('counts protocol errors by code and refused connections by reason', () => {
    const parsed = parse(text);
    assert.equal(value(parsed, 'push_protocol_errors_total', { code: 'unknown_operation' }), 1);
    assert.equal(value(parsed, 'push_connections_refused_total', { reason: 'origin_not_allowed' }), 1);
    assert.equal(value(parsed, 'push_connections_refused_total', { reason: 'unauthorized' }), 0);
  });

  test('follows the changes: closed connections leave the gauges', async () => {
    clients.closeAll();
    const parsed = await waitUntil(async () => {
      const current = parse(await (await fetch(`${daemon.url}/metrics`)).text());
      const open = value(current, 'push_connections', { namespace: '/', transport: 'websocket', protocol: '5' })
        + value(current, 'push_connections', { namespace: '/', transport: 'polling', protocol: '5' });
      return open === 0 ? current : null;
    }, { what: 'the connection gauges to drop to 0' });
    assert.equal(value(parsed, 'push_users_online', { namespace: '/' }), 0);
    assert.equal(value(parsed, 'push_publishes_total'), 2, 'counters do not go down');
  });

  // The text format requires that "all lines for a given metric must be
  // provided as one single group, with the optional HELP and TYPE lines
  // first" (Prometheus exposition formats, "Grouping and sorting").
  test('keeps each family in one group, HELP and TYPE first', () => {
    const parsed = parse(text);
    const seen = new Set();
    let current = null;
    let inSamples = false;
    for (const line of parsed.lines) {
      if (line === '' || (line.startsWith('#') && !/^# (HELP|TYPE) /.test(line))) continue;
      const family = familyOf(line, parsed);
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

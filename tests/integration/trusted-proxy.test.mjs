// Per-address limits behind a proxy: which address is the browser's
// (--trusted-proxy, X-Forwarded-For, Forwarded), IPv6 browsers counted per
// /64, what a trusted proxy that names no browser gets, and the handshake
// rate table staying bounded under a flood from many addresses.
//
// The daemon's peer is always loopback here. Loopback is trusted by
// default, so the headers a test sends are those of a proxy on the same
// host; with --trusted-proxy set to another address, loopback is a browser
// and its headers are ignored.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { afterEach, describe, test } from 'node:test';

import { startDaemon } from './support/daemon.mjs';
import { engineIoPath, pollingHandshake, RawWebSocket } from './support/engineio.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { stats } from './support/publish.mjs';

/** A trusted proxy that is not loopback (TEST-NET-1, RFC 5737). */
const UNRELATED_PROXY = '192.0.2.1';

/** More addresses than the handshake rate table holds (65,536). */
const FLOOD_ADDRESSES = 100_000;
/** The table's bound, the daemon's MAX_RATE_LIMITED_ADDRESSES. */
const TABLE_BOUND = 65_536;

const cleanups = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()();
});
const daemonWith = async (args) => {
  const daemon = await startDaemon({ logLevel: 'info', args });
  cleanups.push(() => daemon.cleanup());
  return daemon;
};
const rawOpen = async (daemon, options) => {
  const raw = await RawWebSocket.open(daemon, options);
  cleanups.push(() => raw.terminate());
  return raw;
};
const viaProxy = (forwardedFor) => ({ headers: { 'x-forwarded-for': forwardedFor } });
const statusVia = async (daemon, headers) => (await pollingHandshake(daemon, { headers })).status;
const metric = async (daemon, series) => seriesValue(await scrape(daemon), series);

describe('behind a trusted proxy (loopback, the default)', () => {
  test('the handshake rate is counted per forwarded browser, per IPv4 address and IPv6 /64', async () => {
    const daemon = await daemonWith(['--handshakes-per-ip-per-minute', '2']);
    const browser = { 'x-forwarded-for': '198.51.100.1, 203.0.113.7' }; // the left part is the browser's own claim
    assert.equal(await statusVia(daemon, browser), 200);
    assert.equal(await statusVia(daemon, { 'x-forwarded-for': '203.0.113.7' }), 200);
    assert.equal(await statusVia(daemon, { 'x-forwarded-for': '198.51.100.9, 203.0.113.7' }), 429);
    assert.equal(await statusVia(daemon, { forwarded: 'for=203.0.113.7;proto=https' }), 429, 'the same browser named by Forwarded');
    assert.equal(await statusVia(daemon, { 'x-forwarded-for': '203.0.113.8' }), 200, 'another browser has its own budget');

    assert.equal(await statusVia(daemon, { 'x-forwarded-for': '2001:db8:1:2::1' }), 200);
    assert.equal(await statusVia(daemon, { forwarded: 'for="[2001:db8:1:2::2]:4711"' }), 200);
    assert.equal(await statusVia(daemon, { 'x-forwarded-for': '2001:db8:1:2:ffff::3' }), 429, 'one /64 is one browser');
    assert.equal(await statusVia(daemon, { 'x-forwarded-for': '2001:db8:1:3::1' }), 200, 'the next /64 is another');

    assert.equal(await metric(daemon, 'push_connections_refused_total{reason="handshake_rate_exceeded"}'), 3);
    assert.match(daemon.log, /INFO.*refused a connection.*handshake_rate_exceeded.*address=203\.0\.113\.7/);
    assert.match(daemon.log, /INFO.*refused a connection.*handshake_rate_exceeded.*address=2001:db8:1:2::\/64/);
  });

  test('open connections are counted per forwarded browser', async () => {
    const daemon = await daemonWith(['--max-connections-per-ip', '2']);
    await rawOpen(daemon, viaProxy('203.0.113.7'));
    await rawOpen(daemon, { headers: { forwarded: 'for=203.0.113.7' } });
    await assert.rejects(rawOpen(daemon, viaProxy('203.0.113.7')), /too_many_connections_from_address/);
    await rawOpen(daemon, viaProxy('203.0.113.8'));
    assert.equal(await metric(daemon, 'push_connections_refused_total{reason="too_many_connections_from_address"}'), 1);
    assert.equal((await stats(daemon.socketPath)).connections, 3);
  });

  test('without a forwarding header, per-address limits do not apply: counted, warned once', async () => {
    const daemon = await daemonWith(['--max-connections-per-ip', '2', '--handshakes-per-ip-per-minute', '2']);
    for (let i = 0; i < 4; i++) await rawOpen(daemon);
    assert.equal((await stats(daemon.socketPath)).connections, 4);
    assert.equal(await metric(daemon, 'push_forwarding_header_problems_total{problem="missing"}'), 4);
    const warnings = daemon.log.match(/WARN.*a trusted proxy sent a request without a usable X-Forwarded-For or Forwarded header.*per-IP limits do not apply/g);
    assert.equal(warnings?.length, 1, daemon.logTail());
  });

  test('an unreadable forwarding header is limited as the proxy itself', async () => {
    const daemon = await daemonWith(['--handshakes-per-ip-per-minute', '2']);
    assert.equal(await statusVia(daemon, { 'x-forwarded-for': 'not-an-address' }), 200);
    assert.equal(await statusVia(daemon, { forwarded: 'for=_hidden' }), 200);
    assert.equal(await statusVia(daemon, { 'x-forwarded-for': '203.0.113.7, unknown' }), 429);
    assert.equal(await statusVia(daemon, { 'x-forwarded-for': '203.0.113.7' }), 200, 'a readable one is its own browser');
    assert.equal(await metric(daemon, 'push_forwarding_header_problems_total{problem="unreadable"}'), 3);
    assert.match(daemon.log, /WARN.*without a usable X-Forwarded-For.*limited as if they all came from the proxy/);
    assert.match(daemon.log, /INFO.*refused a connection.*handshake_rate_exceeded.*address=127\.0\.0\.1/);
    assert.ok(daemon.running);
  });
});

describe('a peer that is not a trusted proxy', () => {
  test('is the browser: its forwarding headers are ignored', async () => {
    const daemon = await daemonWith(['--trusted-proxy', UNRELATED_PROXY, '--handshakes-per-ip-per-minute', '2', '--max-connections-per-ip', '1']);
    assert.equal(await statusVia(daemon, { 'x-forwarded-for': '203.0.113.1' }), 200);
    assert.equal(await statusVia(daemon, { forwarded: 'for=203.0.113.2' }), 200);
    assert.equal(await statusVia(daemon, { 'x-forwarded-for': '203.0.113.3' }), 429, 'a new claim is no new budget');
    assert.equal(await statusVia(daemon, {}), 429);
    assert.match(daemon.log, /INFO.*refused a connection.*handshake_rate_exceeded.*address=127\.0\.0\.1/);

    const other = { localAddress: '127.0.0.2' };
    await rawOpen(daemon, { ...other, ...viaProxy('203.0.113.4') });
    await assert.rejects(rawOpen(daemon, { ...other, ...viaProxy('203.0.113.5') }), /too_many_connections_from_address/);
    assert.equal(await metric(daemon, 'push_forwarding_header_problems_total{problem="missing"}'), 0);
  });
});

/** The daemon's resident memory in KiB, from /proc. */
function residentKib(daemon) {
  const status = fs.readFileSync(`/proc/${daemon.child.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)[1]);
}

/**
 * Sends one request per address, each from the proxy on behalf of a
 * distinct browser in 10.0.0.0/8, `parallel` at a time over kept-alive
 * connections. Resolves with the count of answers by status.
 */
async function floodFromAddresses(daemon, count, parallel = 32) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: parallel });
  const statuses = new Map();
  let next = 0;
  const one = (i) => new Promise((resolve, reject) => {
    const browser = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    // An engine.io handshake as the rate limit sees it (no sid) that
    // engine.io then refuses for its unknown transport, so that no session
    // is made and only the rate limit's table grows.
    const request = http.get({ host: '127.0.0.1', port: daemon.port, path: engineIoPath('flood'), agent, headers: { 'x-forwarded-for': browser } }, (response) => {
      response.resume();
      response.on('end', () => {
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        resolve();
      });
    });
    request.on('error', reject);
  });
  const worker = async () => {
    while (next < count) await one(next++);
  };
  try {
    await Promise.all(Array.from({ length: parallel }, worker));
  } finally {
    agent.destroy();
  }
  return statuses;
}

describe('the handshake rate table under a flood from many addresses', () => {
  test(`stays bounded past ${TABLE_BOUND} addresses, and the addresses it knows stay limited`, { timeout: 120_000 }, async (t) => {
    // One handshake a minute: nothing is forgotten during the test, so only
    // the table's bound can keep it from holding every address.
    const daemon = await daemonWith(['--handshakes-per-ip-per-minute', '1']);
    const early = { 'x-forwarded-for': '198.51.100.77' };
    assert.equal(await statusVia(daemon, early), 200);
    assert.equal(await statusVia(daemon, early), 429);
    const rssBefore = residentKib(daemon);

    const statuses = await floodFromAddresses(daemon, FLOOD_ADDRESSES);
    assert.deepEqual([...statuses], [[400, FLOOD_ADDRESSES]], 'every flood request reached engine.io, which refused its transport');

    const page = await scrape(daemon);
    const remembered = seriesValue(page, 'push_handshake_rate_addresses');
    // Handshakes racing each other may each add one past the bound.
    assert.ok(remembered <= TABLE_BOUND + 8, `the table holds ${remembered} addresses; the old one held all ${FLOOD_ADDRESSES + 1}`);
    assert.ok(remembered >= TABLE_BOUND - 64, `the table filled up (${remembered})`);
    const unremembered = seriesValue(page, 'push_handshake_rate_unremembered_total');
    assert.ok(unremembered >= FLOOD_ADDRESSES + 1 - TABLE_BOUND, `${unremembered} handshakes went unremembered`);
    assert.match(daemon.log, /WARN.*the handshake rate table is full/);

    assert.equal(await statusVia(daemon, early), 429, 'an address it knew before the flood is still limited');
    const grownKib = residentKib(daemon) - rssBefore;
    t.diagnostic(`${remembered} addresses remembered, ${unremembered} not; the daemon grew by ${grownKib} KiB`);
    // The bounded table is a few MiB. The bound above is the real check;
    // this loose one only catches gross growth anywhere else on the way
    // (allocator noise must not fail it).
    assert.ok(grownKib < 64 * 1024, `the daemon grew by ${grownKib} KiB during the flood`);
    assert.ok(daemon.running);
  });
});

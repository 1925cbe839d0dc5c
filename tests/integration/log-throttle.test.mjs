// Log lines a client can make the daemon repeat are throttled per kind and
// source address (docs/operations.md, "Logs"): the first is written, the
// rest of the interval (10 s) are counted and one line at its end says how
// many were not written. Metrics count every event. Before, 3,000 HTTP API
// requests with a wrong token added 366 KB to the log, 122 bytes each.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { startDaemon } from './support/daemon.mjs';
import { RawWebSocket } from './support/engineio.mjs';
import { scrape, seriesValue } from './support/metrics.mjs';
import { waitUntil } from './support/wait.mjs';

const TOKEN = 'log-throttle-test-token-0123456789abcdefghijkl';
const WRONG_TOKENS = 3000;
const REFUSED_JOINS = 150;
/** A second loopback address, so a second source. */
const OTHER_ADDRESS = '127.0.0.2';
/** The throttle's interval, and some slack for the line at its end. */
const INTERVAL_MS = 10_000;

/** POSTs to the API with a wrong token from `localAddress`; resolves with the status. */
function wrongTokenRequest(daemon, agent, localAddress = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: '127.0.0.1',
      port: daemon.port,
      path: '/api/publish',
      method: 'POST',
      agent,
      localAddress,
      headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' },
    }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode));
    });
    request.on('error', reject);
    request.end('{"event":"x","data":1}');
  });
}

/** The daemon's log lines matching `pattern`. */
const linesMatching = (daemon, pattern) => daemon.log.split('\n').filter((line) => pattern.test(line));

describe('log throttling', () => {
  let daemon;
  let logBefore;
  before(async () => {
    daemon = await startDaemon({
      // Loopback is trusted as a proxy by default; trust another, so the
      // test's own address is the client's.
      args: ['--http-publish-token', TOKEN, '--max-connections-per-ip', '1', '--trusted-proxy', '192.0.2.1'],
      logLevel: 'info',
    });
    logBefore = daemon.log.length;
  });
  after(async () => {
    await daemon?.cleanup();
  });

  test(`${WRONG_TOKENS} wrong tokens from one address: one line, then one count; every one is counted in the metrics`, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    try {
      for (let sent = 0; sent < WRONG_TOKENS; sent += 100) {
        const statuses = await Promise.all(Array.from({ length: 100 }, () => wrongTokenRequest(daemon, agent)));
        assert.ok(statuses.every((status) => status === 401));
      }
      assert.equal(await wrongTokenRequest(daemon, agent, OTHER_ADDRESS), 401);
    } finally {
      agent.destroy();
    }
    const forbidden = seriesValue(await scrape(daemon), 'push_protocol_errors_total{code="forbidden"}');
    assert.equal(forbidden, WRONG_TOKENS + 1, 'every refusal is counted');
    const refusedLines = linesMatching(daemon, /refused an HTTP publish request with a missing or wrong token/);
    assert.equal(refusedLines.length, 2, `one line per address:\n${refusedLines.join('\n')}`);
    assert.match(refusedLines[0], /source=127\.0\.0\.1/);
    assert.match(refusedLines[1], /source=127\.0\.0\.2/);
  });

  test(`${REFUSED_JOINS} refused connections from one address: one line, then one count`, async () => {
    const kept = await RawWebSocket.open(daemon);
    try {
      for (let n = 0; n < REFUSED_JOINS; n += 25) {
        const attempts = await Promise.allSettled(Array.from({ length: 25 }, () => RawWebSocket.open(daemon)));
        for (const attempt of attempts) {
          assert.equal(attempt.status, 'rejected');
          assert.match(attempt.reason.message, /too_many_connections_from_address/);
        }
      }
      const refused = seriesValue(await scrape(daemon), 'push_connections_refused_total{reason="too_many_connections_from_address"}');
      assert.equal(refused, REFUSED_JOINS, 'every refusal is counted');
      const lines = linesMatching(daemon, /refused a connection/);
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0], /too_many_connections_from_address.*address=127\.0\.0\.1/);
    } finally {
      kept.terminate();
    }
  });

  test('at the end of the interval, one line per kind and address says how many were not written; the log stays small', async () => {
    await waitUntil(() => linesMatching(daemon, /were not written/).length >= 2, {
      timeoutMs: INTERVAL_MS + 5_000,
      what: () => `the counts at the end of the interval; the log has:\n${daemon.log.slice(logBefore)}`,
    });
    const counts = linesMatching(daemon, /were not written/);
    const tokenCount = counts.find((line) => /kind="?http_api_token/.test(line));
    assert.ok(tokenCount, counts.join('\n'));
    assert.match(tokenCount, /source="?127\.0\.0\.1/);
    assert.match(tokenCount, new RegExp(`not_written=${WRONG_TOKENS - 1}\\b`));
    const refusalCount = counts.find((line) => /kind="?too_many_connections_from_address/.test(line));
    assert.ok(refusalCount, counts.join('\n'));
    assert.match(refusalCount, new RegExp(`not_written=${REFUSED_JOINS - 1}\\b`));
    assert.equal(counts.length, 2, 'nothing to count for the address that sent one');
    // About a dozen lines for 3,000 + 150 events, where each event had
    // written its own line (122 bytes each for the tokens alone).
    const written = daemon.log.length - logBefore;
    assert.ok(written < 8_000, `the flood added ${written} bytes to the log:\n${daemon.log.slice(logBefore)}`);
  });
});

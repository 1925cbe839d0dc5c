// Reading single series from the daemon's /metrics page.

import assert from 'node:assert/strict';

/** The /metrics page of `daemon`, as text. */
export async function scrape(daemon) {
  const response = await fetch(`${daemon.url}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

/**
 * The value of one series, written exactly as on the page, e.g.
 * `push_connections_refused_total{reason="unauthorized"}`. Fails when the
 * series is missing, so a renamed label cannot pass unnoticed.
 */
export function seriesValue(text, series) {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `/metrics has no series ${series}:\n${text}`);
  const value = Number(line.slice(series.length + 1));
  assert.ok(Number.isFinite(value), `${line} has no numeric value`);
  return value;
}

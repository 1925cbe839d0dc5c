// Looking at a running daemon from outside: its resident memory (from
// /proc) and single samples of its /metrics page.
//
// The robustness tests state their memory bounds in terms of VmRSS, the
// figure an operator sees in `top` or `systemctl status`.

import assert from 'node:assert/strict';
import fs from 'node:fs';

/** Resident memory of process `pid` in KiB (VmRSS of /proc/PID/status). */
export function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  assert.ok(match, `no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

/** The daemon's resident memory in MiB, rounded to one decimal. */
export const rssMiB = (daemon) => Math.round(rssKiB(daemon.child.pid) / 102.4) / 10;

/**
 * Fetches /metrics and returns a function reading one sample by its full
 * name with labels, e.g. `push_connections_refused_total{reason="origin_not_allowed"}`;
 * a sample that is absent reads as 0.
 */
export async function scrape(daemon) {
  const response = await fetch(`${daemon.url}/metrics`);
  assert.equal(response.status, 200, 'GET /metrics');
  const samples = new Map();
  for (const line of (await response.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return (key) => samples.get(key) ?? 0;
}

/** One sample of /metrics, as `scrape` reads it. */
export async function metric(daemon, key) {
  return (await scrape(daemon))(key);
}

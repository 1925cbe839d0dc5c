// A running daemon's resident memory, from /proc (its /metrics series are
// read with metrics.mjs).
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

// The socket.io Admin UI, played by the npm socket.io-client speaking as
// the UI's page does (node_modules/@socket.io/admin-ui/ui/dist): it joins
// `/admin` with { username, password } or { sessionId } in its auth
// object, and listens for `session`, `config`, `server_stats` and, in
// full mode, the socket events.

import path from 'node:path';

import { io } from 'socket.io-client';

import { repoRoot } from './daemon.mjs';
import { GUARD_MS, waitUntil, withGuard } from './wait.mjs';

/** The UI's page from the npm package, as `admin_ui_files` names it. */
export const UI_FILES = path.join(repoRoot, 'tests/node_modules/@socket.io/admin-ui/ui/dist');

export const USERNAME = 'admin';
export const PASSWORD = 'correct horse battery staple';
/**
 * PASSWORD's bcrypt hash, made by PHP as the docs tell operators to:
 * php -r 'echo password_hash("correct horse battery staple", PASSWORD_BCRYPT, ["cost" => 4]);'
 * Cost 4, bcrypt's cheapest, keeps the tests quick.
 */
export const PASSWORD_HASH = '$2y$04$aPB4JU4ZogN5K6.jemVcyeuAOgkcwQ0jo8PKoXBxNUFFAj7Zc8xia';

/** The flags that turn the Admin UI on. */
export function adminUiArgs({ mode, page = false, adminPort } = {}) {
  const args = ['--admin-ui-username', USERNAME, '--admin-ui-password-hash', PASSWORD_HASH];
  if (mode) args.push('--admin-ui-mode', mode);
  if (adminPort !== undefined) args.push('--admin-listen', `127.0.0.1:${adminPort}`);
  if (page) args.push('--admin-ui-files', UI_FILES);
  return args;
}

const UI_EVENTS = [
  'session', 'config', 'server_stats', 'all_sockets',
  'socket_connected', 'socket_disconnected', 'room_joined', 'room_left',
];

/** One Admin UI connection and everything it received. */
export class AdminUiClient {
  constructor(socket) {
    this.socket = socket;
    this.events = [];
    this.waiters = new Set();
    for (const event of UI_EVENTS) {
      socket.on(event, (...args) => {
        this.events.push({ event, args });
        for (const waiter of this.waiters) waiter();
      });
    }
  }

  /** The first arguments of every `event` received, in order. */
  received(event) {
    return this.events.filter((e) => e.event === event).map((e) => e.args[0]);
  }

  /** Resolves with the arguments of the first `event` whose arguments match. */
  waitFor(event, predicate = () => true, what = event) {
    const find = () => this.events.find((e) => e.event === event && predicate(...e.args));
    return withGuard(new Promise((resolve) => {
      const check = () => {
        const found = find();
        if (found) {
          this.waiters.delete(check);
          resolve(found.args);
        }
      };
      this.waiters.add(check);
      check();
    }), `the Admin UI to receive ${what}`);
  }

  /** The first `server_stats` from `serverId` matching `predicate`. */
  async statsOf(serverId, predicate = () => true, what = `server_stats of ${serverId}`) {
    const [stats] = await this.waitFor('server_stats', (s) => s.serverId === serverId && predicate(s), what);
    return stats;
  }

  /** Every aggregatedEvents entry received so far, summed by type. */
  totals(serverId) {
    const totals = {};
    for (const stats of this.received('server_stats')) {
      if (serverId !== undefined && stats.serverId !== serverId) continue;
      for (const { type, count } of stats.aggregatedEvents) totals[type] = (totals[type] ?? 0) + count;
    }
    return totals;
  }

  /** Waits until the summed aggregatedEvents satisfy `predicate`. */
  waitForTotals(predicate, what, serverId) {
    return waitUntil(() => predicate(this.totals(serverId)), {
      what: () => `${what}; totals so far ${JSON.stringify(this.totals(serverId))}`,
    });
  }

  close() {
    this.socket.disconnect();
  }
}

/**
 * Joins `/admin` on `daemon` with `auth`; resolves with the connected
 * client, or rejects with the connect_error (its message is what the UI
 * shows).
 */
export async function connectUi(daemon, { auth = { username: USERNAME, password: PASSWORD }, transport = 'websocket', headers } = {}) {
  const socket = io(`${daemon.url}/admin`, {
    forceNew: true,
    reconnection: false,
    transports: transport === 'polling' ? ['polling'] : ['websocket'],
    auth,
    ...(headers ? { extraHeaders: headers } : {}),
  });
  const client = new AdminUiClient(socket);
  const connected = new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  try {
    await withGuard(connected, `the Admin UI to join /admin on ${daemon.url}`, GUARD_MS);
  } catch (error) {
    socket.disconnect();
    throw error;
  }
  return client;
}

/** The connect_error message `/admin` answers `auth` with. */
export async function refusal(daemon, auth, options = {}) {
  try {
    const client = await connectUi(daemon, { auth, ...options });
    client.close();
  } catch (error) {
    return error.message;
  }
  throw new Error(`/admin let ${JSON.stringify(auth)} in`);
}

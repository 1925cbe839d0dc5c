// Browsers, played by the real socket.io-client v4 in Node.
//
// Every client records each event it receives, in order. Tests wait for
// `connect` before publishing; to show a message did NOT arrive they use
// `flush`: a marker broadcast published after it, which each client must
// receive first, so anything published earlier has had its chance.

import { io } from 'socket.io-client';

import { stats } from './publish.mjs';
import { GUARD_MS, waitUntil, withGuard } from './wait.mjs';

/** The transports every delivery test runs over. */
export const TRANSPORTS = ['websocket', 'polling', 'upgrade'];

function transportOptions(transport) {
  switch (transport) {
    case 'websocket':
      return { transports: ['websocket'] };
    case 'polling':
      return { transports: ['polling'], upgrade: false };
    case 'upgrade':
      // The client's default: polling first, then upgrade to WebSocket.
      return { transports: ['polling', 'websocket'], upgrade: true };
    default:
      throw new Error(`unknown transport ${transport}`);
  }
}

export class Client {
  constructor(socket, name) {
    this.socket = socket;
    this.name = name;
    this.events = [];
    /** The push:recovery statuses, one per connect, kept apart from events. */
    this.statuses = [];
    this.waiters = new Set();
    socket.onAny((event, ...args) => {
      if (event === 'push:recovery') {
        this.statuses.push(args[0]);
      } else {
        // With recovery on, the last argument is { offset }.
        this.events.push({ event, data: args[0], offset: args[1]?.offset });
      }
      for (const waiter of this.waiters) waiter();
    });
  }

  /** The payloads received under `event`, in order. */
  received(event) {
    return this.events.filter((e) => e.event === event).map((e) => e.data);
  }

  get transport() {
    return this.socket.io.engine?.transport?.name;
  }

  /** Resolves with the first payload of `event` matching `predicate`. */
  waitFor(event, predicate = () => true, timeoutMs = GUARD_MS) {
    const find = () => this.events.find((e) => e.event === event && predicate(e.data));
    const found = find();
    if (found) return Promise.resolve(found.data);
    let waiter;
    const arrived = new Promise((resolve) => {
      waiter = () => {
        const match = find();
        if (match) resolve(match.data);
      };
      this.waiters.add(waiter);
    });
    return withGuard(arrived, `${this.name} to receive "${event}"`, timeoutMs).finally(() => {
      this.waiters.delete(waiter);
    });
  }

  close() {
    this.socket.disconnect();
  }
}

/** Keeps every client a test opens, to close them all afterwards. */
export class ClientPool {
  constructor() {
    this.clients = [];
    this.markers = 0;
  }

  /**
   * Opens a client to `daemon` and resolves once it is connected (and, for
   * the `upgrade` transport, upgraded to WebSocket). Rejects with the
   * connect_error if the server refuses it.
   * Options: transport, namespace, cookie, origin, name, headers, and
   * timeoutMs (the guard on connecting, GUARD_MS by default), and auth
   * (the socket.io auth object, e.g. { offset }).
   */
  async connect(daemon, { transport = 'websocket', namespace = '/', cookie, origin, name, headers = {}, timeoutMs = GUARD_MS, auth } = {}) {
    const extraHeaders = { ...headers };
    if (cookie !== undefined) extraHeaders.cookie = cookie;
    if (origin !== undefined) extraHeaders.origin = origin;
    const label = name ?? `client ${this.clients.length + 1} (${transport}${cookie ? `, ${cookie}` : ''})`;
    const socket = io(`${daemon.url}${namespace}`, {
      ...transportOptions(transport),
      forceNew: true,
      reconnection: false,
      timeout: timeoutMs,
      extraHeaders,
      ...(auth === undefined ? {} : { auth }),
    });
    const client = new Client(socket, label);
    this.clients.push(client);
    const connected = new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    await withGuard(connected, `${label} to connect\n${daemon.logTail?.() ?? ''}`, timeoutMs);
    if (transport === 'upgrade' && client.transport !== 'websocket') {
      const engine = socket.io.engine;
      await withGuard(
        new Promise((resolve) => engine.once('upgrade', resolve)),
        `${label} to upgrade from polling to websocket`,
      );
    }
    return client;
  }

  /**
   * Tries to connect and resolves with the connect_error the server gave;
   * fails if the client connects instead.
   */
  async refused(daemon, options) {
    let client;
    try {
      client = await this.connect(daemon, options);
    } catch (error) {
      if (/^timed out/.test(error.message)) throw error;
      return error;
    }
    client.close();
    throw new Error(`${client.name} connected, but the server should have refused it`);
  }

  /**
   * Publishes a marker broadcast to `namespace` with `publish` (a function
   * taking { namespace, event, data }) and waits until every client in
   * `clients` has received it. Messages published before it were then
   * either delivered already or not sent to that client at all.
   */
  async flush(publish, clients, namespace = '/') {
    const marker = ++this.markers;
    await publish({ namespace, event: 'marker', data: { marker } });
    await Promise.all(clients.map((client) => client.waitFor('marker', (data) => data?.marker === marker)));
  }

  closeAll() {
    for (const client of this.clients) client.close();
    this.clients = [];
  }

  /**
   * Closes every client and waits until `daemon` counts no connection any
   * more, so the next test starts from an empty server.
   */
  async closeAllAndSettle(daemon) {
    this.closeAll();
    if (!daemon?.running) return;
    await waitUntil(async () => (await stats(daemon.socketPath)).connections === 0, {
      what: 'the daemon to see every client disconnect',
    });
  }
}

// Browsers that do not behave: engine.io spoken by hand.
//
// The real socket.io client (clients.mjs) only sends what a well-behaved
// page sends. The robustness tests need clients that send malformed or
// oversized packets, stop reading, or come from another loopback address;
// these helpers speak engine.io v4 directly, over WebSocket (with the `ws`
// package) or long-polling (plain HTTP requests).
//
// engine.io v4 text packets: a one-character type (0 open, 1 close, 2 ping,
// 3 pong, 4 message, 5 upgrade, 6 noop) and the data. A socket.io packet
// travels inside a message: "40" joins namespace "/", "40/chat," joins
// "/chat", "42[...]" is an event.

import http from 'node:http';

import WebSocket from 'ws';

import { GUARD_MS, withGuard } from './wait.mjs';

/**
 * One HTTP request with node:http (unlike fetch, it can pick the local
 * address, so a test can play a client from 127.0.0.2). Resolves with
 * { status, headers, body } where body is text.
 */
export function httpRequest(daemon, { method = 'GET', path, headers = {}, body, localAddress } = {}) {
  const answered = new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port: daemon.port, method, path, headers, localAddress, agent: false });
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (d) => { text += d; });
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body: text }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
  return withGuard(answered, `the answer to ${method} ${path}`);
}

/** The engine.io path for `transport`, with extra query parameters. */
export const engineIoPath = (transport, query = '') => `/socket.io/?EIO=4&transport=${transport}${query}`;

/**
 * Opens an engine.io session over long-polling. Resolves with
 * { status, sid, open, body }; sid and open (the parsed open packet) are
 * set only when the server accepted the handshake.
 */
export async function pollingHandshake(daemon, { headers = {}, localAddress } = {}) {
  const answer = await httpRequest(daemon, { path: engineIoPath('polling'), headers, localAddress });
  const result = { status: answer.status, body: answer.body };
  if (answer.status === 200 && answer.body.startsWith('0')) {
    result.open = JSON.parse(answer.body.slice(1));
    result.sid = result.open.sid;
  }
  return result;
}

/**
 * A hand-driven engine.io connection over WebSocket. Every text frame the
 * server sends is kept in `messages`; pings are answered unless `pong` is
 * false, or once the connection is paused.
 */
export class RawWebSocket {
  /**
   * Connects; with `join` (the default) also joins `namespace` and resolves
   * once the server confirmed it with its "40" packet.
   * Options: namespace, join, origin, localAddress, headers, pong, and
   * query (appended to the engine.io query string).
   * Rejects if the upgrade is refused (the error has `status`).
   */
  static async open(daemon, { namespace = '/', join = true, origin, localAddress, headers = {}, pong = true, query = '' } = {}) {
    const socket = new WebSocket(`ws://127.0.0.1:${daemon.port}${engineIoPath('websocket', query)}`, {
      headers: origin === undefined ? headers : { ...headers, origin },
      localAddress,
      perMessageDeflate: false,
      handshakeTimeout: GUARD_MS,
    });
    const raw = new RawWebSocket(socket, pong);
    await withGuard(new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('unexpected-response', (request, response) => {
        const error = new Error(`the WebSocket upgrade was answered ${response.statusCode}`);
        error.status = response.statusCode;
        response.resume();
        reject(error);
      });
      socket.once('error', reject);
    }), 'a WebSocket upgrade');
    raw.open = JSON.parse((await raw.next((m) => m.startsWith('0'))).slice(1));
    if (join) {
      raw.send(namespace === '/' ? '40' : `40${namespace},`);
      const prefix = namespace === '/' ? '40' : `40${namespace},`;
      const answer = await raw.next((m) => m.startsWith(prefix) || m.startsWith(namespace === '/' ? '44' : `44${namespace},`));
      if (!answer.startsWith(prefix)) {
        raw.terminate();
        const error = new Error(`joining ${namespace} was refused: ${answer}`);
        error.packet = answer;
        throw error;
      }
    }
    return raw;
  }

  constructor(socket, pong) {
    this.socket = socket;
    this.messages = [];
    this.waiters = new Set();
    this.closeInfo = null;
    this.paused = false;
    socket.on('message', (data, isBinary) => {
      const text = isBinary ? data : data.toString('utf8');
      if (pong && !isBinary && text === '2' && !this.paused) socket.send('3');
      this.messages.push(text);
      for (const waiter of this.waiters) waiter();
    });
    socket.on('error', () => {}); // a reset shows up as a close
    this.closed = new Promise((resolve) => {
      socket.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const waiter of this.waiters) waiter();
        resolve(this.closeInfo);
      });
    });
  }

  /** Resolves with the first message after those already consumed matching `predicate`. */
  next(predicate = () => true, timeoutMs = GUARD_MS) {
    this.consumed ??= 0;
    const find = () => {
      for (let i = this.consumed; i < this.messages.length; i++) {
        if (typeof this.messages[i] === 'string' && predicate(this.messages[i])) {
          this.consumed = i + 1;
          return this.messages[i];
        }
      }
      return undefined;
    };
    let waiter;
    const found = new Promise((resolve, reject) => {
      waiter = () => {
        const message = find();
        if (message !== undefined) resolve(message);
        else if (this.closeInfo) reject(new Error(`the connection closed (${JSON.stringify(this.closeInfo)}) before the message came`));
      };
      this.waiters.add(waiter);
      waiter();
    });
    return withGuard(found, 'an engine.io message', timeoutMs).finally(() => this.waiters.delete(waiter));
  }

  /** The socket.io events received so far, as [name, data] pairs. */
  events(namespace = '/') {
    const prefix = namespace === '/' ? '42' : `42${namespace},`;
    return this.messages
      .filter((m) => typeof m === 'string' && m.startsWith(prefix))
      .map((m) => JSON.parse(m.slice(prefix.length)));
  }

  send(data) {
    this.socket.send(data);
  }

  /** Resolves once the server has closed the connection; with its close code. */
  async closedByServer(timeoutMs = GUARD_MS) {
    return withGuard(this.closed, 'the server to close the WebSocket', timeoutMs);
  }

  /**
   * Stops reading from the TCP socket: the kernel buffers fill, and then
   * the server's writes to this connection stall. Pings go unanswered.
   */
  pause() {
    this.paused = true;
    this.socket.pause();
  }

  /** Reads again after pause(): what the kernel and the server held comes in. */
  resume() {
    this.paused = false;
    this.socket.resume();
  }

  get isOpen() {
    return this.closeInfo === null;
  }

  terminate() {
    this.socket.terminate();
  }
}

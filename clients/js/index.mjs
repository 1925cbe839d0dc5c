// push-core's page helper: the stock socket.io client, plus missed-message
// recovery.
//
// push-core sends every event with one trailing argument, `{ offset }`, and
// right after each connect the event `push:recovery` with
// `{ recovered, replayed, offset }`. This helper keeps the last offset the
// page has seen, hands it back to push-core on every reconnect (through the
// socket.io `auth` callback, so socket.io's own reconnection carries it),
// removes the trailing argument before your handlers see a message, and
// tells you whether what was missed came back (`recovered`) or the page
// must reload its state (`reset`).
//
// It has no dependency of its own: pass it the `io` function of the
// socket.io client you load, from npm or from a <script> tag.
//
//   import { connect } from 'push-core-client';
//   import { io } from 'socket.io-client';
//   const push = connect(io, 'https://push.example.com/news', {
//     offset: document.body.dataset.pushOffset,   // rendered by PHP position()
//     onRecovered: ({ replayed }) => console.log(`recovered ${replayed} messages`),
//     onReset: () => location.reload(),
//   });
//   push.on('headline', (message) => show(message));

/** The event push-core sends first after each connect. */
export const STATUS_EVENT = 'push:recovery';

/** True for the trailing `{ offset }` argument push-core adds. */
function isOffsetArgument(value) {
  return value !== null
    && typeof value === 'object'
    && !Array.isArray(value)
    && typeof value.offset === 'string'
    && Object.keys(value).length === 1;
}

/**
 * Connects to push-core at `url` (a namespace URL, as for `io(url)`).
 *
 * Options, besides any socket.io client option:
 * - `offset`: where the page starts, e.g. rendered from PHP's
 *   `PushClient::position()`; the first connect then receives everything
 *   published after the page was rendered.
 * - `auth`: extra auth fields to send (an object); `offset` is added to it.
 * - `onRecovered({ replayed, offset })`: the page had an offset and every
 *   message it missed has been replayed (before any live one).
 * - `onReset({ offset })`: the page had an offset but what it missed could
 *   not be recovered (too old, or the server lost its history): reload the
 *   page's state.
 */
export function connect(io, url, options = {}) {
  return new PushSocket(io, url, options);
}

export class PushSocket {
  #offset;
  #handlers = new Map();
  #onRecovered;
  #onReset;

  constructor(io, url, { offset, auth, onRecovered, onReset, ...ioOptions } = {}) {
    if (typeof io !== 'function') {
      throw new TypeError('connect(io, url): pass the socket.io client\'s io function first');
    }
    this.#offset = typeof offset === 'string' && offset !== '' ? offset : undefined;
    this.#onRecovered = onRecovered;
    this.#onReset = onReset;
    const extra = auth && typeof auth === 'object' ? auth : {};
    this.socket = io(url, {
      ...ioOptions,
      // A function, so each reconnect sends the offset as it is then.
      auth: (send) => send(this.#offset === undefined ? { ...extra } : { ...extra, offset: this.#offset }),
    });
    this.socket.on(STATUS_EVENT, (status) => this.#status(status));
    this.socket.onAny((event, ...args) => this.#deliver(event, args));
  }

  /** The offset of the last message the page has seen, if any. */
  get offset() {
    return this.#offset;
  }

  /** Calls `handler(message)` for each `event`, replayed or live. */
  on(event, handler) {
    if (!this.#handlers.has(event)) this.#handlers.set(event, new Set());
    this.#handlers.get(event).add(handler);
    return this;
  }

  off(event, handler) {
    this.#handlers.get(event)?.delete(handler);
    return this;
  }

  close() {
    this.socket.close();
  }

  #status(status) {
    if (!status || typeof status.offset !== 'string') return;
    const hadOffset = this.#offset !== undefined;
    if (status.recovered) {
      this.#onRecovered?.({ replayed: status.replayed, offset: status.offset });
    } else {
      // Nothing could be replayed: start from where the stream is now.
      this.#offset = status.offset;
      if (hadOffset) this.#onReset?.({ offset: status.offset });
    }
  }

  #deliver(event, args) {
    if (event === STATUS_EVENT) return;
    if (args.length > 0 && isOffsetArgument(args[args.length - 1])) {
      this.#offset = args.pop().offset;
    }
    for (const handler of this.#handlers.get(event) ?? []) handler(...args);
  }
}

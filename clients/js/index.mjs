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
// must reload its state (`reset`, or `missed` when the server runs without
// recovery).
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

/**
 * The event push-core sends, with recovery off, to a page that read too
 * slowly and lost messages: `{ missed }`, how many since it was last told.
 */
export const MISSED_EVENT = 'push:missed';

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
 * - `onRecovered({ replayed, offset })`: the page connected with an offset
 *   and the `replayed` messages it missed have all reached your handlers,
 *   in order (called after the last of them; at once when none were
 *   missed). `offset` is the page's offset then.
 * - `onReset({ offset })`: the page connected with an offset but what it
 *   missed could not be recovered (older than the server's window, or the
 *   server lost its history), or, while connected, it read so slowly that
 *   it fell behind by more than the server keeps: reload the page's state.
 *   The helper goes on from `offset`, the stream's current position.
 * - `onMissed({ missed })`: with recovery off on the server, the page read
 *   too slowly and `missed` messages were lost for it: reload the page's
 *   state.
 *
 * Without recovery on the server (no `push:recovery` status after a
 * connect), messages are passed on untouched and neither callback fires.
 */
export function connect(io, url, options = {}) {
  return new PushSocket(io, url, options);
}

export class PushSocket {
  #offset;
  #handlers = new Map();
  #onRecovered;
  #onReset;
  #onMissed;
  // Whether this connection speaks recovery: push-core sent its status
  // first. Only then is a trailing `{ offset }` push-core's and not part of
  // the message (with recovery off, a message may itself be `{ offset }`).
  #recoveryOn = false;
  // After a recovered status: how many replayed messages are still to come,
  // and what to report once they are all delivered.
  #replayPending = 0;
  #recovered = null;

  constructor(io, url, { offset, auth, onRecovered, onReset, onMissed, ...ioOptions } = {}) {
    if (typeof io !== 'function') {
      throw new TypeError('connect(io, url): pass the socket.io client\'s io function first');
    }
    if (auth !== undefined && (auth === null || typeof auth !== 'object' || Array.isArray(auth))) {
      throw new TypeError('connect(io, url, { auth }): auth must be an object of extra fields');
    }
    this.#offset = typeof offset === 'string' && offset !== '' ? offset : undefined;
    this.#onRecovered = onRecovered;
    this.#onReset = onReset;
    this.#onMissed = onMissed;
    const extra = auth ?? {};
    this.socket = io(url, {
      ...ioOptions,
      // A function, so each reconnect sends the offset as it is then.
      auth: (send) => send(this.#offset === undefined ? { ...extra } : { ...extra, offset: this.#offset }),
    });
    // onAny listeners run before on() ones, and see every event, status included.
    this.socket.onAny((event, ...args) => this.#receive(event, args));
    this.socket.on('disconnect', () => {
      // The next connection says again whether it recovers; a replay cut
      // short is resumed from the last offset seen, not reported.
      this.#recoveryOn = false;
      this.#replayPending = 0;
      this.#recovered = null;
    });
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

  #receive(event, args) {
    if (event === STATUS_EVENT) {
      this.#status(args[0]);
      return;
    }
    if (event === MISSED_EVENT) {
      const missed = Number.isInteger(args[0]?.missed) ? args[0].missed : 0;
      if (missed > 0) this.#onMissed?.({ missed });
      return;
    }
    if (this.#recoveryOn && args.length > 0 && isOffsetArgument(args[args.length - 1])) {
      this.#offset = args.pop().offset;
    }
    const endsReplay = this.#replayPending > 0 && --this.#replayPending === 0;
    try {
      for (const handler of [...(this.#handlers.get(event) ?? [])]) handler(...args);
    } finally {
      // A handler that throws must not keep the page from learning it recovered.
      if (endsReplay) this.#reportRecovered();
    }
  }

  #status(status) {
    if (!status || typeof status.offset !== 'string') return;
    this.#recoveryOn = true;
    const hadOffset = this.#offset !== undefined;
    if (status.recovered) {
      // Reported once the replayed messages have reached the handlers, so
      // that onRecovered can tell the page it is complete again.
      const replayed = Number.isInteger(status.replayed) && status.replayed > 0 ? status.replayed : 0;
      this.#recovered = { replayed, offset: status.offset };
      this.#replayPending = replayed;
      if (replayed === 0) this.#reportRecovered();
    } else {
      // Nothing could be replayed: start from where the stream is now.
      this.#offset = status.offset;
      if (hadOffset) this.#onReset?.({ offset: status.offset });
    }
  }

  #reportRecovered() {
    const info = { ...this.#recovered, offset: this.#offset };
    this.#recovered = null;
    this.#onRecovered?.(info);
  }
}

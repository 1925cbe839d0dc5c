// Browsers for the PHP and Yii test suites, played by the real
// socket.io-client v4, or 2.5.0 as old pages load it.
//
// Usage: node tests/support/socketio-receiver.mjs URL CLIENTS_JSON
//   CLIENTS_JSON: [{"name": "alice", "namespace": "/ns", "cookie": "user=alice",
//                   "transport": "websocket" (default) or "polling",
//                   "offset": "<recovery offset>" (optional, sent as auth),
//                   "client": "2.5.0" (optional: socket.io-client 2.5.0,
//                             socket.io protocol 4, instead of 4.x),
//                   "events": ["e", ...] (required with client 2.5.0, which
//                             has no catch-all listener)}, ...]
//
// Prints one JSON object per line on stdout, flushed as it happens:
//   {"type":"connect","client":"alice"}            (again after each reconnect)
//   {"type":"recovery","client":"alice","data":{"recovered":...,"replayed":...,"offset":"..."}}
//   {"type":"event","client":"alice","event":"e","data":...,"json":"...","offset":"..."}
//   {"type":"connect_error","client":"alice","message":"..."}
// The daemon's `push:recovery` status, which it sends first after each
// connect, is a line of its own, not an event: tests about what a browser
// received are about the site's messages. An event's "offset" is the one in
// the trailing argument the daemon adds when recovery is on (else absent).
// and runs until stdin closes or it is killed. The PHP side reads the lines
// (tests/support/php/Browsers.php).

import { io } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';

const [url, clientsJson] = process.argv.slice(2);
const clients = JSON.parse(clientsJson);

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** The event the daemon reports its recovery status with (docs/recovery.md). */
const RECOVERY_EVENT = 'push:recovery';

/**
 * A socket.io-client 2.5.0 page: the same lines, from the events it was
 * told to listen to. Protocol 4 has no auth object: an offset goes in the
 * Manager's query (docs/old-clients.md).
 */
function oldClient({ name, namespace, cookie, transport, offset, events = [] }) {
  const manager = new ioV2.Manager(url, {
    transports: [transport ?? 'websocket'],
    extraHeaders: cookie ? { Cookie: cookie } : {},
    ...(offset === undefined ? {} : { query: { offset } }),
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
  });
  const socket = manager.socket(namespace);
  socket.on('connect', () => emit({ type: 'connect', client: name }));
  socket.on('connect_error', (error) => emit({ type: 'connect_error', client: name, message: String(error?.message ?? error) }));
  socket.on(RECOVERY_EVENT, (data) => emit({ type: 'recovery', client: name, data }));
  for (const event of events) {
    socket.on(event, (data, ...rest) => {
      emit({ type: 'event', client: name, event, data, json: JSON.stringify(data), offset: rest.at(-1)?.offset });
    });
  }
  return socket;
}

const sockets = clients.map((client) => {
  if (client.client === '2.5.0') return oldClient(client);
  const { name, namespace, cookie, transport, offset } = client;
  const socket = io(`${url}${namespace}`, {
    transports: [transport ?? 'websocket'],
    extraHeaders: cookie ? { Cookie: cookie } : {},
    ...(offset === undefined ? {} : { auth: { offset } }),
    // A restarted daemon should be found again quickly.
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
  });
  socket.on('connect', () => emit({ type: 'connect', client: name }));
  socket.on('connect_error', (error) => emit({ type: 'connect_error', client: name, message: error.message }));
  socket.onAny((event, data, ...rest) => {
    if (event === RECOVERY_EVENT) {
      emit({ type: 'recovery', client: name, data });
      return;
    }
    emit({ type: 'event', client: name, event, data, json: JSON.stringify(data), offset: rest.at(-1)?.offset });
  });
  return socket;
});

/**
 * How long the close packets get to leave before the process exits. A
 * long-polling client sends its close in an HTTP request of its own; exiting
 * at once would leave its session open on the daemon until the ping timeout,
 * and a page of the next test would see it as another connection.
 */
const CLOSE_FLUSH_MS = 100;

function stop() {
  for (const socket of sockets) socket.disconnect();
  setTimeout(() => process.exit(0), CLOSE_FLUSH_MS);
}

process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);

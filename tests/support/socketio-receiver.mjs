// Browsers for the PHP and Yii test suites, played by the real
// socket.io-client v4.
//
// Usage: node tests/support/socketio-receiver.mjs URL CLIENTS_JSON
//   CLIENTS_JSON: [{"name": "alice", "namespace": "/ns", "cookie": "user=alice",
//                   "transport": "websocket" (default) or "polling",
//                   "offset": "<recovery offset>" (optional, sent as auth)}, ...]
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

const [url, clientsJson] = process.argv.slice(2);
const clients = JSON.parse(clientsJson);

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** The event the daemon reports its recovery status with (docs/recovery.md). */
const RECOVERY_EVENT = 'push:recovery';

const sockets = clients.map(({ name, namespace, cookie, transport, offset }) => {
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

function stop() {
  for (const socket of sockets) socket.disconnect();
  process.exit(0);
}

process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);

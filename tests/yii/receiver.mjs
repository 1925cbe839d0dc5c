// Browsers for the Yii component tests, played by the real socket.io-client v4.
//
// Usage: node tests/yii/receiver.mjs URL CLIENTS_JSON
//   CLIENTS_JSON: [{"name": "alice", "namespace": "/message_namespace", "cookie": "PHPSESSID=..."}, ...]
//
// Prints one JSON object per line on stdout as things happen:
//   {"type":"connect","client":"alice"}
//   {"type":"connect_error","client":"alice","message":"..."}
//   {"type":"event","client":"alice","event":"e","data":...,"json":"..."}
// and runs until stdin closes or it gets SIGTERM. tests/yii/support/Browsers.php
// reads the lines.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

// socket.io-client is installed in tests/node_modules (cd tests && npm ci).
const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json'));
const { io } = require('socket.io-client');

const [url, clientsJson] = process.argv.slice(2);
const clients = JSON.parse(clientsJson);

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

const sockets = clients.map(({ name, namespace, cookie, transport }) => {
  const socket = io(`${url}${namespace}`, {
    transports: [transport ?? 'websocket'],
    extraHeaders: cookie ? { Cookie: cookie } : {},
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
  });
  socket.on('connect', () => emit({ type: 'connect', client: name }));
  socket.on('connect_error', (error) => emit({ type: 'connect_error', client: name, message: error.message }));
  socket.onAny((event, data) => emit({ type: 'event', client: name, event, data, json: JSON.stringify(data) }));
  return socket;
});

function stop() {
  for (const socket of sockets) socket.disconnect();
  process.exit(0);
}

process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);

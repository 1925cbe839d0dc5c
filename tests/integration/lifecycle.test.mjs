// Starting and stopping: /healthz, graceful SIGTERM/SIGINT, the publish
// socket file (stale, live, not a socket, its mode), and configuration
// that cannot be used, and what the log may hold.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';

import { cookieFor, startAuthBackend } from './support/auth-backend.mjs';
import { ClientPool } from './support/clients.mjs';
import { freePort, runBinary, startDaemon, tempDir } from './support/daemon.mjs';
import { ErrorCode, Kind, RawConnection, request, sendOk } from './support/publish.mjs';

const isSocket = (file) => {
  try {
    return fs.statSync(file).isSocket();
  } catch {
    return false;
  }
};
const modeOf = (file) => fs.statSync(file).mode & 0o777;

/** Daemons and directories a test made, removed afterwards. */
const cleanups = [];
const later = (fn) => cleanups.push(fn);
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()();
});
const daemonFor = async (options) => {
  const daemon = await startDaemon(options);
  later(() => daemon.cleanup());
  return daemon;
};
const scratch = () => {
  const dir = tempDir();
  later(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
};

/**
 * A browser on each transport, and a promise each that resolves when the
 * daemon disconnects it.
 */
async function browsersOnBothTransports(daemon) {
  const clients = new ClientPool();
  later(() => clients.closeAll());
  const ws = await clients.connect(daemon, { transport: 'websocket' });
  const polling = await clients.connect(daemon, { transport: 'polling' });
  const disconnected = [ws, polling].map((client) => new Promise((resolve) => client.socket.once('disconnect', resolve)));
  return { ws, polling, disconnected };
}

describe('health', () => {
  test('/healthz answers 200 ok', async () => {
    const daemon = await daemonFor();
    const response = await fetch(`${daemon.url}/healthz`);
    assert.equal(response.status, 200);
    assert.equal((await response.text()).trim(), 'ok');
  });
});

describe('graceful shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT']) {
    test(`${signal} disconnects browsers, removes the socket file and exits 0`, async () => {
      const daemon = await daemonFor();
      const { disconnected } = await browsersOnBothTransports(daemon);
      const publisher = await RawConnection.open(daemon.socketPath);
      later(() => publisher.destroy());
      await publisher.handshake();
      assert.ok(isSocket(daemon.socketPath));

      const exit = await daemon.stop({ signal });
      assert.deepEqual(exit, { code: 0, signal: null }, daemon.logTail());
      assert.equal(fs.existsSync(daemon.socketPath), false, 'the socket file must be removed');
      await Promise.all(disconnected);
      await publisher.closedByDaemon();
      assert.match(daemon.log, /push-core stopped/);
    });
  }
});

describe('shutdown under load', () => {
  test('publishers that never stop sending do not keep browsers connected or the daemon running', async () => {
    const daemon = await daemonFor();
    const { ws, disconnected } = await browsersOnBothTransports(daemon);

    // One publisher reads its replies, one never does (its replies fill the
    // socket buffers); both keep writing publishes until the daemon is gone.
    const flooders = [];
    for (let i = 0; i < 2; i += 1) {
      const publisher = await RawConnection.open(daemon.socketPath);
      later(() => publisher.destroy());
      await publisher.handshake();
      if (i === 1) publisher.socket.pause();
      let id = 10;
      let sending = true;
      const pump = () => {
        while (sending && !publisher.ended) {
          id += 1;
          if (!publisher.socket.write(request.publish(id, { event: 'flood', data: { n: id } }))) {
            publisher.socket.once('drain', pump);
            return;
          }
        }
      };
      publisher.socket.on('error', () => { sending = false; });
      pump();
      flooders.push({ publisher, stop: () => { sending = false; } });
    }
    await ws.waitFor('flood');
    later(() => flooders.forEach((flooder) => flooder.stop()));

    const exit = await daemon.stop({ signal: 'SIGTERM' });
    assert.deepEqual(exit, { code: 0, signal: null }, daemon.logTail());
    await Promise.all(disconnected);
    assert.equal(fs.existsSync(daemon.socketPath), false, 'the socket file must be removed');
    // The steps ran in order, and every one of them.
    const steps = ['push-core ready', 'push-core stopped'].map((line) => daemon.log.indexOf(line));
    assert.ok(steps.every((at) => at >= 0) && steps[0] < steps[1], daemon.logTail());
    await flooders[0].publisher.closedByDaemon();
  });
});

describe('the publish socket file', () => {
  test('a stale socket file left by a crash is replaced', async () => {
    const dir = scratch();
    const socketPath = path.join(dir, 'push.sock');
    const crashed = await startDaemon({ dir, socketPath });
    await crashed.stop({ signal: 'SIGKILL' });
    assert.ok(isSocket(socketPath), 'SIGKILL leaves the socket file behind');

    const daemon = await daemonFor({ dir, socketPath });
    assert.match(daemon.log, /replacing a stale publish socket file/);
    const clients = new ClientPool();
    later(() => clients.closeAll());
    const browser = await clients.connect(daemon, {});
    assert.equal(await sendOk(socketPath, { event: 'hello', data: 'again' }), 1);
    assert.equal(await browser.waitFor('hello'), 'again');
  });

  test("the socket's directory is created when missing", async () => {
    const dir = scratch();
    const socketPath = path.join(dir, 'run', 'push-core', 'push.sock');
    const daemon = await daemonFor({ dir, socketPath });
    assert.ok(isSocket(socketPath));
    assert.equal(await sendOk(daemon.socketPath, { event: 'e', data: 1 }), 0);
  });

  test('a second daemon on a live socket refuses to start and leaves the first alone', async () => {
    const first = await daemonFor();
    const port = await freePort();
    const second = await runBinary(['serve', '--listen', `127.0.0.1:${port}`, '--socket', first.socketPath]);
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /already listening/);
    assert.ok(second.stderr.includes(first.socketPath), 'the message names the socket');

    assert.ok(isSocket(first.socketPath), "the first daemon's socket file is still there");
    assert.equal(await sendOk(first.socketPath, { event: 'still', data: 1 }), 0);
    assert.equal(first.running, true);
  });

  test('a path that is not a socket is not replaced', async () => {
    const dir = scratch();
    const socketPath = path.join(dir, 'important.txt');
    fs.writeFileSync(socketPath, 'precious data\n');
    const result = await runBinary(['serve', '--listen', `127.0.0.1:${await freePort()}`, '--socket', socketPath]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /not a socket/);
    assert.equal(fs.readFileSync(socketPath, 'utf8'), 'precious data\n');
  });

  test('the socket file mode is 0660 by default, and set by flag, environment or file', async () => {
    const byDefault = await daemonFor();
    assert.equal(modeOf(byDefault.socketPath), 0o660);

    const byFlag = await daemonFor({ args: ['--socket-mode', '0600'] });
    assert.equal(modeOf(byFlag.socketPath), 0o600);

    const byEnv = await daemonFor({ env: { PUSH_CORE_SOCKET_MODE: '0640' } });
    assert.equal(modeOf(byEnv.socketPath), 0o640);

    const dir = scratch();
    const config = path.join(dir, 'push.toml');
    fs.writeFileSync(config, 'socket_mode = "0604"\n');
    const byFile = await daemonFor({ args: ['--config', config] });
    assert.equal(modeOf(byFile.socketPath), 0o604);

    // Flags win over the environment, which wins over the file.
    const envOverFile = await daemonFor({ args: ['--config', config], env: { PUSH_CORE_SOCKET_MODE: '0640' } });
    assert.equal(modeOf(envOverFile.socketPath), 0o640);
    const flagOverAll = await daemonFor({ args: ['--config', config, '--socket-mode', '0600'], env: { PUSH_CORE_SOCKET_MODE: '0640' } });
    assert.equal(modeOf(flagOverAll.socketPath), 0o600);
  });

  // Every way a mode can be written, from each source. A TOML integer is the
  // mode as written (0o640 is 0o640; 416 is the same number in decimal); text
  // is octal, as chmod reads it.
  const SPELLINGS = [
    { how: 'flag 0640', args: ['--socket-mode', '0640'] },
    { how: 'flag 640', args: ['--socket-mode', '640'] },
    { how: 'flag 0o640', args: ['--socket-mode', '0o640'] },
    { how: 'environment 0640', env: { PUSH_CORE_SOCKET_MODE: '0640' } },
    { how: 'environment 640', env: { PUSH_CORE_SOCKET_MODE: '640' } },
    { how: 'environment 0o640', env: { PUSH_CORE_SOCKET_MODE: '0o640' } },
    { how: 'file integer 0o640', file: 'socket_mode = 0o640\n' },
    { how: 'file integer 416', file: 'socket_mode = 416\n' },
    { how: 'file text "0640"', file: 'socket_mode = "0640"\n' },
    { how: 'file text "0o640"', file: 'socket_mode = "0o640"\n' },
  ];
  for (const { how, args = [], env = {}, file } of SPELLINGS) {
    test(`socket_mode from ${how} is 0640`, async () => {
      const all = [...args];
      if (file !== undefined) {
        const config = path.join(scratch(), 'push.toml');
        fs.writeFileSync(config, file);
        all.push('--config', config);
      }
      const daemon = await daemonFor({ args: all, env });
      assert.equal(modeOf(daemon.socketPath), 0o640);
    });
  }
});

describe('configuration that cannot be used', () => {
  /** Runs serve with a fresh socket path; returns the result and the path. */
  const serve = async ({ args = [], env = {}, file } = {}) => {
    const dir = scratch();
    const socketPath = path.join(dir, 'push.sock');
    const all = ['serve', '--socket', socketPath, ...args];
    if (!args.includes('--listen') && !('PUSH_CORE_LISTEN' in env)) all.push('--listen', `127.0.0.1:${await freePort()}`);
    if (file !== undefined) {
      const config = path.join(dir, 'push.toml');
      fs.writeFileSync(config, file);
      all.push('--config', config);
    }
    return { ...(await runBinary(all, { env })), socketPath };
  };

  const CASES = [
    { key: 'listen', args: ['--listen', 'nowhere'] },
    { key: 'listen', env: { PUSH_CORE_LISTEN: '127.0.0.1:99999' } },
    { key: 'socket_mode', args: ['--socket-mode', '999'] },
    { key: 'socket_mode', file: 'socket_mode = "rw-rw----"\n' },
    // The old bug: this file made a socket every local user could write to.
    { key: 'socket_mode', file: 'socket_mode = 0o666\n' },
    { key: 'socket_mode', file: 'socket_mode = "0662"\n' },
    { key: 'socket_mode', args: ['--socket-mode', '0666'] },
    { key: 'socket_mode', env: { PUSH_CORE_SOCKET_MODE: '0777' } },
    // A decimal integer that is no mode, not read as 0o660 nor as 0o1224.
    { key: 'socket_mode', file: 'socket_mode = 660\n' },
    // 0660 is not TOML; the file is refused, not read as 660 or 0.
    { key: 'socket_mode', file: 'socket_mode = 0660\n' },
    { key: 'trusted_proxies', env: { PUSH_CORE_TRUSTED_PROXIES: '127.0.0.1,proxy.example' } },
    { key: 'max_client_packet', file: 'max_client_packet = "1KB"\n' },
    { key: 'namespaces', args: ['--namespace', 'chat'] },
    { key: 'namespaces', env: { PUSH_CORE_NAMESPACES: '/ok,/bad space' } },
    { key: 'max_frame_size', args: ['--max-frame-size', '12'] },
    { key: 'max_frame_size', env: { PUSH_CORE_MAX_FRAME_SIZE: 'lots' } },
    { key: 'max_publishers', args: ['--max-publishers', '0'] },
    { key: 'max_publishers', env: { PUSH_CORE_MAX_PUBLISHERS: '4611686018427387904' } },
    { key: 'max_publishers', file: 'max_publishers = 65537\n' },
    { key: 'auth_url', args: ['--auth-url', 'ftp://example.com/auth'] },
    { key: 'auth_url', file: 'auth_url = "not a url"\n' },
    { key: 'auth_required', args: ['--auth-required'] },
    { key: 'auth_required', env: { PUSH_CORE_AUTH_URL: 'http://127.0.0.1:1/auth', PUSH_CORE_AUTH_REQUIRED: 'maybe' } },
    { key: 'auth_timeout', args: ['--auth-url', 'http://127.0.0.1:1/auth', '--auth-timeout', 'soon'] },
    { key: 'auth_timeout', args: ['--auth-timeout', '0s'] },
    { key: 'auth_cache_ttl', env: { PUSH_CORE_AUTH_CACHE_TTL: 'forever' } },
    { key: 'auth_cache_size', args: ['--auth-cache-size', 'lots'] },
    { key: 'allowed_origins', args: ['--allowed-origin', 'https://app.example/path'] },
    { key: 'allowed_origins', env: { PUSH_CORE_ALLOWED_ORIGINS: 'https://ok.example,app.example' } },
    { key: 'log_format', args: ['--log-format', 'xml'] },
    { key: 'log_level', args: ['--log-level', 'push_core=loud'] },
    { key: 'lisen', file: 'lisen = "127.0.0.1:3000"\n' },
  ];

  for (const { key, args, env, file } of CASES) {
    const how = args ? args.join(' ') : env ? Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ') : `config file ${JSON.stringify(file.trim())}`;
    test(`${how} exits 2 naming ${key}, before binding anything`, async () => {
      const result = await serve({ args, env, file });
      assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
      assert.ok(result.stderr.includes(key), `stderr should name ${key}: ${result.stderr}`);
      assert.equal(fs.existsSync(result.socketPath), false, 'the socket must not be created');
    });
  }

  // Word for word: these messages are what an operator reads first.
  const MESSAGES = [
    { args: ['--max-frame-size', '12'], says: 'invalid value for max_frame_size (--max-frame-size / PUSH_CORE_MAX_FRAME_SIZE): 12 is below the minimum of 1024 bytes' },
    { env: { PUSH_CORE_MAX_CONNECTIONS: 'lots' }, says: 'invalid value for max_connections (--max-connections / PUSH_CORE_MAX_CONNECTIONS): "lots" is not a whole number in range' },
    { file: 'auth_timeout = "soon"\n', says: 'invalid value for auth_timeout (--auth-timeout / PUSH_CORE_AUTH_TIMEOUT): "soon" is not a duration like 500ms, 2s or 5m' },
    { args: ['--auth-required'], says: 'invalid value for auth_required (--auth-required / PUSH_CORE_AUTH_REQUIRED): is set but auth_url is not; every connection would be refused' },
    { args: ['--publisher-uid', 'root'], says: 'invalid value for publisher_uids (--publisher-uid / PUSH_CORE_PUBLISHER_UIDS): "root" is not a whole number in range' },
    { args: ['--allowed-origin', 'https://app.example/path'], says: 'invalid value for allowed_origins (--allowed-origin / PUSH_CORE_ALLOWED_ORIGINS): "https://app.example/path" is not an origin like https://www.example.com (scheme and host only)' },
    { file: 'socket_mode = 0o666\n', says: 'invalid value for socket_mode (--socket-mode / PUSH_CORE_SOCKET_MODE): 0666 lets every local user connect and publish to every browser; use 0660 with socket_group (or 0600), or set allow_world_writable_socket if publisher_uids/publisher_gids decide who may publish' },
  ];
  for (const { args, env, file, says } of MESSAGES) {
    test(`says: ${says.slice(0, 60)}…`, async () => {
      const result = await serve({ args, env, file });
      assert.equal(result.code, 2);
      assert.equal(result.stderr, `push-core: ${says}\n`);
    });
  }

  test('an unknown key in the file is named, with the file', async () => {
    const result = await serve({ file: 'lisen = "127.0.0.1:3000"\n' });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^push-core: config file \/.*push\.toml is not valid: unknown setting `lisen`; the settings are listed in docs\/configuration\.md\n$/);
  });

  test('check-config prints the effective settings as a file that reads back the same, secrets hidden; serve --print-config too', async () => {
    const dir = scratch();
    const token = 'k'.repeat(40);
    const env = { PUSH_CORE_MAX_CONNECTIONS: '5000' };
    const first = await runBinary(['check-config', '--namespace', '/news', '--socket-mode', '0640'], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^namespaces = \["\/news"\]$/m);
    assert.match(first.stdout, /^socket_mode = "0640"$/m);
    assert.match(first.stdout, /^max_connections = 5000$/m);
    const file = path.join(dir, 'effective.toml');
    fs.writeFileSync(file, first.stdout);
    const again = await runBinary(['check-config', '--config', file]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, first.stdout);

    const secret = await runBinary(['serve', '--print-config', '--http-publish-token', token]);
    assert.equal(secret.code, 0, secret.stderr);
    assert.ok(!secret.stdout.includes(token), 'the token must not be printed');
    assert.match(secret.stdout, /^http_publish_token = "\(hidden\)"$/m);

    const bad = await runBinary(['check-config', '--max-frame-size', '12']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid value for max_frame_size/);
  });

  // check-config runs serve's checks: one bad value of every setting, each
  // named. The list must cover every key config-template lists, so a new
  // setting without a case here fails this test.
  const BAD_VALUE_OF_EVERY_KEY = {
    listen: 'nowhere',
    namespaces: 'chat',
    allowed_origins: 'app.example',
    socket: '',
    socket_mode: '0666',
    allow_world_writable_socket: 'maybe',
    socket_group: 'no-such-group-here',
    publisher_uids: 'root',
    publisher_gids: 'wheel',
    max_frame_size: '12',
    max_publishers: '0',
    http_publish_token: 'short',
    auth_url: 'ftp://example.com/auth',
    auth_required: 'maybe',
    auth_timeout: 'soon',
    auth_cache_ttl: '2days',
    auth_cache_size: '-1',
    auth_max_concurrency: '0',
    auth_retry_attempts: '0',
    auth_retry_backoff_max: '500ms',
    auth_retry_slot_wait: '2h',
    max_connections: 'lots',
    max_connections_per_ip: '-5',
    handshakes_per_ip_per_minute: '99999999999',
    max_client_packet: '10',
    client_events_per_minute: 'often',
    max_rooms_per_connection: '1.5',
    max_buffered_messages: '0',
    ping_interval: '0',
    ping_timeout: '2h',
    connect_timeout: 'later',
    trusted_proxies: 'proxy.example',
    client_script: '/nonexistent/socket.io.js',
    recovery_window: 'forever',
    recovery_max_messages: 'many',
    recovery_max_memory: '1 lots',
    recovery_max_replay: '-1',
    state_dir: '',
    adapter: 'postgres',
    redis_url: 'http://127.0.0.1:6379',
    node_id: 'node one',
    redis_prefix: 'a#b',
    cluster_wait: 'soon',
    admin_listen: 'nowhere',
    log_format: 'xml',
    log_level: 'push_core=loud',
    admin_ui_username: 'admin',
    admin_ui_password_hash: 'hunter2',
    admin_ui_mode: 'admin',
    admin_ui_files: '/nonexistent',
  };

  test('check-config refuses a bad value of every setting with exit 2, naming the key, its flag and its variable', async () => {
    const template = await runBinary(['config-template']);
    assert.equal(template.code, 0, template.stderr);
    const keys = [...template.stdout.matchAll(/^#([a-z_]+) = /gm)].map((m) => m[1]);
    assert.deepEqual(Object.keys(BAD_VALUE_OF_EVERY_KEY).sort(), [...keys].sort());
    for (const [key, value] of Object.entries(BAD_VALUE_OF_EVERY_KEY)) {
      const variable = `PUSH_CORE_${key.toUpperCase()}`;
      const result = await runBinary(['check-config'], { env: { [variable]: value } });
      assert.equal(result.code, 2, `${variable}=${value}: ${result.stderr}`);
      assert.equal(result.stdout, '', key);
      assert.match(result.stderr, new RegExp(`^push-core: invalid value for ${key} \\(--[a-z-]+ / ${variable}\\): .+\n$`), `${variable}=${value}`);
    }
  });

  test('push-core --version shows the publish protocol version the daemon announces in HELLO', async () => {
    const result = await runBinary(['--version']);
    assert.equal(result.code, 0, result.stderr);
    const [, version] = result.stdout.match(/^push-core \d+\.\d+\.\d+ \(publish protocol (\d+)\)\n$/) ?? [];
    assert.ok(version, result.stdout);
    const daemon = await daemonFor();
    const connection = await RawConnection.open(daemon.socketPath);
    later(() => connection.destroy());
    const hello = await connection.call(request.hello(1, Number(version)));
    assert.equal(hello.kind, Kind.HELLO_REPLY);
    assert.equal(hello.version, Number(version));
  });

  test('a HELLO of another version is told which side to upgrade', async () => {
    const daemon = await daemonFor();
    const cases = [
      { version: 0, says: /^the client speaks publish protocol 0, older than this push-core's \d+: upgrade the client/ },
      { version: 0xffff, says: /^the client speaks publish protocol 65535, newer than this push-core's \d+: upgrade push-core/ },
    ];
    for (const { version, says } of cases) {
      const connection = await RawConnection.open(daemon.socketPath);
      later(() => connection.destroy());
      const reply = await connection.call(request.hello(1, version));
      assert.equal(reply.code, ErrorCode.UNSUPPORTED_VERSION);
      assert.match(reply.message, says);
    }
  });

  test('the listen port is not bound when the configuration is bad', async () => {
    const port = await freePort();
    const result = await serve({ args: ['--listen', `127.0.0.1:${port}`, '--log-format', 'xml'] });
    assert.equal(result.code, 2);
    // The port is still free: we can take it ourselves.
    assert.equal(await freePortIs(port), true);
  });

  test('serve --help documents every option', async () => {
    const result = await runBinary(['serve', '--help']);
    assert.equal(result.code, 0);
    for (const flag of ['--listen', '--socket', '--socket-mode', '--namespace', '--max-frame-size', '--auth-url',
      '--auth-required', '--auth-timeout', '--auth-cache-ttl', '--auth-cache-size', '--allowed-origin', '--log-format',
      '--log-level', '--config']) {
      assert.ok(result.stdout.includes(flag), `--help should mention ${flag}`);
    }
  });
});

async function freePortIs(port) {
  const server = net.createServer();
  const ok = await new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise((resolve) => server.close(resolve));
  return ok;
}

describe('logs', () => {
  for (const logLevel of ['info', 'debug']) {
    test(`cookies and payloads stay out of the log at ${logLevel} level; --log-format json writes JSON lines`, async () => {
      const backend = await startAuthBackend();
      later(() => backend.close());
      const daemon = await daemonFor({ args: ['--auth-url', backend.url, '--log-format', 'json'], logLevel });
      const clients = new ClientPool();
      later(() => clients.closeAll());
      const cookie = `${cookieFor('sid-42')}; remember_me=cookie-secret-7f3a`;
      const user = await clients.connect(daemon, { cookie });
      const guest = await clients.connect(daemon, { cookie: 'sid=unknown-secret-91bc' });
      assert.equal(backend.calls.length, 2);
      assert.equal(await sendOk(daemon.socketPath, { event: 'private', users: ['42'], data: { text: 'payload-secret-c0de' } }), 1);
      assert.equal(await user.waitFor('private').then((d) => d.text), 'payload-secret-c0de');
      // A refused publish, whose payload must not be echoed either.
      const publisher = await RawConnection.open(daemon.socketPath);
      later(() => publisher.destroy());
      await publisher.handshake();
      const refused = await publisher.call(request.publish(2, { event: 'e', data: Buffer.from('{"bad": payload-secret-beef') }));
      assert.equal(refused.code, 7);
      guest.close();
      await daemon.stop();

      for (const secret of ['sid-42', 'cookie-secret-7f3a', 'unknown-secret-91bc', 'payload-secret-c0de', 'payload-secret-beef']) {
        assert.ok(!daemon.log.includes(secret), `the log holds ${secret}:\n${daemon.logTail()}`);
      }
      const lines = daemon.log.split('\n').filter((line) => line.trim() !== '');
      assert.ok(lines.length >= 2);
      for (const line of lines) {
        const entry = JSON.parse(line);
        assert.ok(entry.level && entry.timestamp, `a JSON log line with level and timestamp: ${line}`);
      }
      assert.ok(lines.some((line) => JSON.parse(line).fields?.message === 'push-core ready'));
    });
  }
});

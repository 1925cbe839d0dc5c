// The engine.io protocol, rule by rule, against the daemon.
//
// Each test follows a rule of the engine.io protocol (versions 4 and 3, as
// written in socket.io's docs/engine.io-protocol/) and the way the socket.io
// reference server applies it: the handshake's fields, the 400 answers and
// their JSON bodies, ping and pong in the right direction, a session closed
// after a missed pong, the noop that ends a pending poll, the upgrade and
// what is refused after it, and oversized packets. The reference test suite
// talks to an echo server; push-core is a socket.io server, so where it
// echoes a message this suite joins the `/` namespace ("40") and reads the
// answer ("40{...}").
//
// Everything runs against a daemon with the default settings and again
// against one with a 300 ms ping interval and a 200 ms timeout (the
// reference suite's), where the heartbeat rules are also checked.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import WebSocket from 'ws';

import { startDaemon } from './support/daemon.mjs';
import { GUARD_MS, sleep, withGuard } from './support/wait.mjs';

const MAX_CLIENT_PACKET = 4096;

/** The reference server's error bodies. */
const REFUSED = {
  transport: { code: 0, message: 'Transport unknown' },
  sid: { code: 1, message: 'Session ID unknown' },
  method: { code: 2, message: 'Bad handshake method' },
  request: { code: 3, message: 'Bad request' },
  version: { code: 5, message: 'Unsupported protocol version' },
};

const HANDSHAKE_KEYS = ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades'];

/** A WebSocket spoken by hand: every message kept, nothing answered. */
class Frames {
  constructor(url) {
    this.socket = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: GUARD_MS });
    this.messages = [];
    this.waiters = new Set();
    this.closeInfo = null;
    this.refusal = null;
    this.socket.on('message', (data, isBinary) => {
      this.messages.push(isBinary ? data : data.toString('utf8'));
      for (const waiter of this.waiters) waiter();
    });
    let ended;
    this.closed = new Promise((resolve) => { ended = resolve; });
    const end = (code) => {
      if (this.closeInfo) return;
      this.closeInfo = { code };
      for (const waiter of this.waiters) waiter();
      ended(this.closeInfo);
    };
    this.socket.on('unexpected-response', (request, response) => {
      // With a listener here, ws leaves the refused request to us: the
      // upgrade was refused, which ends this WebSocket.
      this.refusal = response.statusCode;
      response.resume();
      request.destroy();
      end(null);
    });
    this.socket.on('error', () => {});
    this.socket.once('close', end);
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('open', resolve);
      this.closed.then(() => reject(new Error(`closed before opening (status ${this.refusal})`)));
    });
    this.opened.catch(() => {});
  }

  send(data) {
    this.socket.send(data);
  }

  /** The next message not yet taken. */
  next(what = 'a message') {
    this.taken ??= 0;
    let waiter;
    const found = new Promise((resolve, reject) => {
      waiter = () => {
        if (this.taken < this.messages.length) {
          // Taken once: a later message must not advance past this one.
          this.waiters.delete(waiter);
          resolve(this.messages[this.taken++]);
        } else if (this.closeInfo) {
          reject(new Error(`the WebSocket closed (${this.closeInfo.code}) before ${what}`));
        }
      };
      this.waiters.add(waiter);
      waiter();
    });
    return withGuard(found, what).finally(() => this.waiters.delete(waiter));
  }

  /** Resolves once the server closed the connection. */
  whenClosed() {
    return withGuard(this.closed, 'the server to close the WebSocket');
  }

  terminate() {
    this.socket.terminate();
  }
}

function suite(name, { pingInterval, pingTimeout, heartbeat }) {
  describe(`engine.io conformance: ${name}`, () => {
    let daemon;
    const opened = [];
    const http = (query, init) => fetch(`http://127.0.0.1:${daemon.port}/socket.io/?${query}`, init);
    const ws = (query) => {
      const frames = new Frames(`ws://127.0.0.1:${daemon.port}/socket.io/?${query}`);
      opened.push(frames);
      return frames;
    };
    /** Opens a polling session; returns its sid. */
    const pollingSession = async (eio = 4) => {
      const response = await http(`EIO=${eio}&transport=polling`);
      assert.equal(response.status, 200);
      const body = await response.text();
      const open = eio === 4 ? body : body.slice(body.indexOf(':') + 1);
      return JSON.parse(open.slice(1)).sid;
    };
    const poll = (sid, extra = '') => http(`EIO=4&transport=polling&sid=${sid}${extra}`);
    const post = (sid, body, eio = 4) => http(`EIO=${eio}&transport=polling&sid=${sid}`, { method: 'POST', body });
    const assertRefused = async (response, refusal) => {
      assert.equal(response.status, 400);
      assert.equal(response.headers.get('content-type'), 'application/json');
      assert.deepEqual(await response.json(), refusal);
    };

    before(async () => {
      const args = ['--max-client-packet', String(MAX_CLIENT_PACKET)];
      if (pingInterval) args.push('--ping-interval', `${pingInterval}ms`, '--ping-timeout', `${pingTimeout}ms`);
      daemon = await startDaemon({ args });
    });
    after(async () => {
      for (const frames of opened) frames.terminate();
      await daemon?.cleanup();
    });

    const expectedInterval = pingInterval ?? 25_000;
    const expectedTimeout = pingTimeout ?? 20_000;

    describe('handshake', () => {
      test('polling: the open packet carries sid, upgrades, pingInterval, pingTimeout and maxPayload', async () => {
        const response = await http('EIO=4&transport=polling');
        assert.equal(response.status, 200);
        const body = await response.text();
        assert.ok(body.startsWith('0'), body);
        const open = JSON.parse(body.slice(1));
        assert.deepEqual(Object.keys(open).sort(), HANDSHAKE_KEYS);
        assert.equal(typeof open.sid, 'string');
        assert.deepEqual(open.upgrades, ['websocket']);
        assert.equal(open.pingInterval, expectedInterval);
        assert.equal(open.pingTimeout, expectedTimeout);
        assert.equal(open.maxPayload, MAX_CLIENT_PACKET);
      });

      test('WebSocket: the first message is the open packet, with no upgrades', async () => {
        const frames = ws('EIO=4&transport=websocket');
        const first = await frames.next('the open packet');
        assert.ok(first.startsWith('0'), first);
        const open = JSON.parse(first.slice(1));
        assert.deepEqual(Object.keys(open).sort(), HANDSHAKE_KEYS);
        assert.deepEqual(open.upgrades, []);
        assert.equal(open.pingInterval, expectedInterval);
        assert.equal(open.pingTimeout, expectedTimeout);
        assert.equal(open.maxPayload, MAX_CLIENT_PACKET);
      });

      test('a missing or unknown EIO gets 400 "Unsupported protocol version"', async () => {
        for (const query of ['transport=polling', 'EIO=abc&transport=polling', 'EIO=5&transport=polling', 'EIO=2&transport=polling']) {
          await assertRefused(await http(query), REFUSED.version);
        }
      });

      test('a missing or unknown transport gets 400 "Transport unknown"', async () => {
        for (const query of ['EIO=4', 'EIO=4&transport=abc', 'EIO=4&transport=webtransport']) {
          await assertRefused(await http(query), REFUSED.transport);
        }
      });

      test('a handshake that is not a GET gets 400 "Bad handshake method"', async () => {
        for (const method of ['POST', 'PUT', 'DELETE']) {
          await assertRefused(await http('EIO=4&transport=polling', { method }), REFUSED.method);
        }
      });

      test('an unknown sid gets 400 "Session ID unknown"', async () => {
        await assertRefused(await poll('AAAAAAAAAAAAAAAA'), REFUSED.sid);
        await assertRefused(await post('not-a-sid', '40'), REFUSED.sid);
      });

      test('transport=websocket without an upgrade gets 400 "Bad request"', async () => {
        await assertRefused(await http('EIO=4&transport=websocket'), REFUSED.request);
      });

      test('a WebSocket with a bad EIO or transport is refused', async () => {
        for (const query of ['transport=websocket', 'EIO=abc&transport=websocket', 'EIO=4', 'EIO=4&transport=abc']) {
          const frames = ws(query);
          await frames.whenClosed();
          assert.equal(frames.refusal, 400, query);
        }
      });

      test('a request with the sid of a session on the other transport gets 400 "Bad request"', async () => {
        const frames = ws('EIO=4&transport=websocket');
        const { sid } = JSON.parse((await frames.next('the open packet')).slice(1));
        await assertRefused(await poll(sid), REFUSED.request);
      });
    });

    describe('message', () => {
      test('polling: a POST is answered "ok" and its packet answered in the next poll', async () => {
        const sid = await pollingSession();
        const pushed = await post(sid, '40');
        assert.equal(pushed.status, 200);
        assert.equal(await pushed.text(), 'ok');
        const polled = await poll(sid);
        assert.equal(polled.status, 200);
        // The join's answer first; push:recovery may follow.
        assert.match((await polled.text()).split('\u001e')[0], /^40\{"sid":"[^"]+"\}$/);
      });

      test('polling: several packets in one payload, separated by \\x1e', async () => {
        const sid = await pollingSession();
        // Join "/" and ask for the server's list of namespaces it does not serve.
        assert.equal((await post(sid, '40\u001e40/nowhere,')).status, 200);
        // The join of "/" waits for the site's answer about the cookies, so
        // the refusal of "/nowhere" may come first, in an earlier poll.
        let answered = '';
        const joined = () => /(^|\u001e)40\{"sid":/.test(answered);
        while (!answered.includes('44/nowhere') || !joined()) {
          const polled = await poll(sid);
          assert.equal(polled.status, 200);
          answered += `${await polled.text()}\u001e`;
        }
        const packets = answered.split('\u001e').filter(Boolean);
        assert.ok(packets.some((p) => /^40\{"sid":/.test(p)), answered);
        assert.ok(packets.includes('44/nowhere,{"message":"Invalid namespace"}'), answered);
      });

      test('polling: a malformed payload gets 400 and closes the session', async () => {
        const sid = await pollingSession();
        assert.equal((await post(sid, 'abc')).status, 400);
        await assertRefused(await poll(sid), REFUSED.sid);
      });

      test('polling: a second GET at once gets 400, the first a close packet, and the session ends', async () => {
        const sid = await pollingSession();
        const [first, second] = await Promise.all([
          poll(sid),
          sleep(50).then(() => poll(sid, '&t=burst')),
        ]);
        assert.equal(first.status, 200);
        assert.equal(await first.text(), '1');
        assert.equal(second.status, 400);
        await assertRefused(await poll(sid), REFUSED.sid);
      });

      test('polling: a cancelled GET closes the session', async () => {
        const sid = await pollingSession();
        const controller = new AbortController();
        poll(sid).then(() => {}, () => {});
        const cancelled = fetch(`http://127.0.0.1:${daemon.port}/socket.io/?EIO=4&transport=polling&sid=${sid}&t=2`, { signal: controller.signal });
        cancelled.catch(() => {});
        await sleep(50);
        controller.abort();
        await sleep(50);
        // The first GET broke the one-GET rule already; either way the
        // session is gone.
        await assertRefused(await poll(sid), REFUSED.sid);
      });

      test('polling: a GET cancelled alone closes the session', async () => {
        const sid = await pollingSession();
        const controller = new AbortController();
        const cancelled = fetch(`http://127.0.0.1:${daemon.port}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { signal: controller.signal });
        cancelled.catch(() => {});
        await sleep(50);
        controller.abort();
        let status;
        for (let i = 0; i < 50 && status !== 400; i++) {
          await sleep(20);
          const response = await poll(sid);
          status = response.status;
          if (status === 400) assert.deepEqual(await response.json(), REFUSED.sid);
          else await response.text();
        }
        assert.equal(status, 400);
      });

      test('WebSocket: a packet is answered over the socket', async () => {
        const frames = ws('EIO=4&transport=websocket');
        await frames.next('the open packet');
        frames.send('40');
        assert.match(await frames.next('the connect answer'), /^40\{"sid":"[^"]+"\}$/);
      });

      test('WebSocket: a malformed packet closes the connection', async () => {
        const frames = ws('EIO=4&transport=websocket');
        await frames.next('the open packet');
        frames.send('abc');
        await frames.whenClosed();
      });

      test(`WebSocket: a message over maxPayload (${MAX_CLIENT_PACKET} bytes) closes the connection with 1009`, async () => {
        const frames = ws('EIO=4&transport=websocket');
        await frames.next('the open packet');
        frames.send(`4${'x'.repeat(MAX_CLIENT_PACKET)}`);
        const { code } = await frames.whenClosed();
        assert.equal(code, 1009);
      });

      test('polling: a body over maxPayload gets 413 and closes the session', async () => {
        const sid = await pollingSession();
        const response = await post(sid, `4${'x'.repeat(MAX_CLIENT_PACKET)}`);
        assert.equal(response.status, 413);
        await assertRefused(await poll(sid), REFUSED.sid);
      });
    });

    describe('close', () => {
      test('polling: a close packet ends the session; the pending GET gets a noop', async () => {
        const sid = await pollingSession();
        const [polled, closed] = await Promise.all([poll(sid), sleep(50).then(() => post(sid, '1'))]);
        assert.equal(closed.status, 200);
        assert.equal(polled.status, 200);
        assert.equal(await polled.text(), '6');
        await assertRefused(await poll(sid), REFUSED.sid);
      });

      test('WebSocket: a close packet closes the connection', async () => {
        const frames = ws('EIO=4&transport=websocket');
        await frames.next('the open packet');
        frames.send('1');
        await frames.whenClosed();
      });
    });

    describe('upgrade', () => {
      test('polling to WebSocket: probe, noop to the pending poll, upgrade, then the WebSocket carries the session', async () => {
        const sid = await pollingSession();
        const pending = poll(sid);
        await sleep(20);
        const frames = ws(`EIO=4&transport=websocket&sid=${sid}`);
        await frames.opened;
        frames.send('2probe');
        assert.equal(await frames.next('the probe answer'), '3probe');
        const polled = await pending;
        assert.equal(polled.status, 200);
        assert.equal(await polled.text(), '6');
        frames.send('5');
        frames.send('40');
        assert.match(await frames.next('the connect answer'), /^40\{"sid":"[^"]+"\}$/);
      });

      test('a poll after the probe, before the upgrade, gets a noop', async () => {
        const sid = await pollingSession();
        const frames = ws(`EIO=4&transport=websocket&sid=${sid}`);
        await frames.opened;
        frames.send('2probe');
        assert.equal(await frames.next('the probe answer'), '3probe');
        const polled = await poll(sid);
        assert.equal(polled.status, 200);
        assert.equal(await polled.text(), '6');
      });

      test('after the upgrade, polling requests with the sid are refused', async () => {
        const sid = await pollingSession();
        const frames = ws(`EIO=4&transport=websocket&sid=${sid}`);
        await frames.opened;
        frames.send('2probe');
        await frames.next('the probe answer');
        frames.send('5');
        let refused;
        for (let i = 0; i < 50 && refused?.status !== 400; i++) {
          if (i > 0) await sleep(20);
          refused = await poll(sid);
          if (refused.status !== 400) await refused.text();
        }
        await assertRefused(refused, REFUSED.request);
        frames.send('40');
        assert.match(await frames.next('the connect answer'), /^40\{/);
      });

      test('after the upgrade, a second WebSocket with the sid is refused', async () => {
        const sid = await pollingSession();
        const frames = ws(`EIO=4&transport=websocket&sid=${sid}`);
        await frames.opened;
        frames.send('2probe');
        await frames.next('the probe answer');
        frames.send('5');
        await sleep(50);
        const second = ws(`EIO=4&transport=websocket&sid=${sid}`);
        await second.whenClosed();
        frames.send('40');
        assert.match(await frames.next('the connect answer'), /^40\{/);
      });

      test('a WebSocket sending something else than the probe is closed; the session goes on polling', async () => {
        const sid = await pollingSession();
        const frames = ws(`EIO=4&transport=websocket&sid=${sid}`);
        await frames.opened;
        frames.send('40');
        await frames.whenClosed();
        assert.equal((await post(sid, '40')).status, 200);
        assert.match(await (await poll(sid)).text(), /^40\{/);
      });
    });

    describe('protocol 3 (socket.io 1.x and 2.x clients)', () => {
      test('polling: the open packet is length-prefixed and the server joins "/" itself', async () => {
        const response = await http('EIO=3&transport=polling');
        assert.equal(response.status, 200);
        const body = await response.text();
        const [, length, packet] = body.match(/^(\d+):(0\{.*\})$/) ?? [];
        assert.ok(packet, body);
        assert.equal(Number(length), packet.length);
        const open = JSON.parse(packet.slice(1));
        assert.deepEqual(Object.keys(open).sort(), HANDSHAKE_KEYS);
        assert.deepEqual(open.upgrades, ['websocket']);
        const polled = await http(`EIO=3&transport=polling&sid=${open.sid}`);
        assert.ok((await polled.text()).startsWith('2:40'));
      });

      test('polling: the client pings, the server pongs', async () => {
        const sid = await pollingSession(3);
        assert.ok((await (await http(`EIO=3&transport=polling&sid=${sid}`)).text()).startsWith('2:40'));
        assert.equal((await post(sid, '1:2', 3)).status, 200);
        assert.equal(await (await http(`EIO=3&transport=polling&sid=${sid}`)).text(), '1:3');
      });

      test('WebSocket: the client pings, the server pongs; a pong from the client is refused', async () => {
        const frames = ws('EIO=3&transport=websocket');
        await frames.next('the open packet');
        assert.equal(await frames.next('the join of "/"'), '40');
        frames.send('2');
        let answer;
        do answer = await frames.next('the pong'); while (answer !== '3');
        frames.send('3');
        await frames.whenClosed();
      });

      test('a protocol 3 session cannot be upgraded with EIO=4', async () => {
        const sid = await pollingSession(3);
        const frames = ws(`EIO=4&transport=websocket&sid=${sid}`);
        await frames.whenClosed();
        assert.equal(frames.refusal, 400);
      });
    });

    if (heartbeat) {
      describe('heartbeat', () => {
        test('polling: the server pings, the client pongs, three times', async () => {
          const sid = await pollingSession();
          for (let i = 0; i < 3; i++) {
            const polled = await poll(sid);
            assert.equal(polled.status, 200);
            assert.equal(await polled.text(), '2');
            assert.equal((await post(sid, '3')).status, 200);
          }
        });

        test('polling: a missed pong closes the session; the next poll gets 400', async () => {
          const sid = await pollingSession();
          await sleep(pingInterval + pingTimeout + 100);
          await assertRefused(await poll(sid), REFUSED.sid);
        });

        test('WebSocket: the server pings, the client pongs, three times', async () => {
          const frames = ws('EIO=4&transport=websocket');
          await frames.next('the open packet');
          for (let i = 0; i < 3; i++) {
            assert.equal(await frames.next('a ping'), '2');
            frames.send('3');
          }
          assert.equal(frames.closeInfo, null);
        });

        test('WebSocket: a missed pong closes the connection', async () => {
          const frames = ws('EIO=4&transport=websocket');
          await frames.next('the open packet');
          assert.equal(await frames.next('a ping'), '2');
          await frames.whenClosed();
        });

        test('WebSocket: a ping from a protocol 4 client is refused (wrong direction)', async () => {
          const frames = ws('EIO=4&transport=websocket');
          await frames.next('the open packet');
          frames.send('2');
          await frames.whenClosed();
        });

        test('protocol 3: a client that stops pinging is closed after pingInterval + pingTimeout', async () => {
          const frames = ws('EIO=3&transport=websocket');
          await frames.next('the open packet');
          frames.send('2');
          await frames.whenClosed();
          assert.ok(frames.messages.includes('3'));
        });
      });
    }
  });
}

suite('default settings', { heartbeat: false });
suite('ping interval 300 ms, timeout 200 ms', { pingInterval: 300, pingTimeout: 200, heartbeat: true });

// The page helper against the real daemon (target/debug/push-core) with the
// npm socket.io client: what handlers get, what comes back after a network
// cut or a restart, and what a reset and a rendered offset do.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';

import {
  NAMESPACE, Network, openPage, position, publish, publishMany, sendOk, sleep, startDaemon, tempDir, waitUntil,
} from './support.mjs';

// Torn down after each test, whatever it left running.
let cleanups = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function daemon(args = [], options = {}) {
  const started = await startDaemon({ args: ['--namespace', NAMESPACE, ...args], ...options });
  cleanups.push(() => started.cleanup());
  return started;
}

async function network(target) {
  const relay = await Network.start(target.port);
  cleanups.push(() => relay.close());
  return relay;
}

function page(url, options) {
  const opened = openPage(url, options);
  cleanups.push(() => opened.close());
  return opened;
}

const waitForTexts = (p, texts) => waitUntil(() => p.seen.length >= texts.length, {
  what: () => `${texts.length} messages; the page has ${JSON.stringify(p.texts())}`,
});

describe('the page helper', () => {
  test('handlers get the message without the trailing offset, which the helper keeps', async () => {
    const push = await daemon();
    const p = page(push.url);
    await p.connected();
    const start = p.push.offset;
    assert.equal(typeof start, 'string');

    // The raw socket.io events, as push-core sent them, next to the helper's.
    const raw = [];
    p.push.socket.onAny((event, ...args) => { if (event === 'news') raw.push(args); });
    assert.equal(await publish(push, 'one'), 1);
    assert.equal(await publish(push, 'two'), 1);
    await waitForTexts(p, ['one', 'two']);

    assert.deepEqual(p.seen, [
      { event: 'news', args: [{ text: 'one' }] },
      { event: 'news', args: [{ text: 'two' }] },
    ]);
    assert.equal(raw.length, 2);
    assert.deepEqual(raw.map((args) => args[0]), [{ text: 'one' }, { text: 'two' }]);
    assert.equal(p.push.offset, raw[1][1].offset, 'the offset of the last message seen');
    assert.notEqual(p.push.offset, start);
    assert.deepEqual(p.recovered, [], 'a first connect without an offset recovers nothing');
    assert.deepEqual(p.resets, []);
  });

  test('after a network cut, what was published meanwhile comes once, in order, then live messages', async () => {
    const push = await daemon();
    const relay = await network(push);
    const p = page(relay.url);
    await p.connected();
    assert.equal(await publish(push, 'before'), 1);
    await waitForTexts(p, ['before']);

    relay.cut();
    await waitUntil(() => !p.push.socket.connected, { what: 'the page to see the cut' });
    const missed = ['missed 1', 'missed 2', 'missed 3'];
    for (const text of missed) {
      assert.equal(await publish(push, text), 0, 'nobody connected while the network is cut');
    }
    relay.restore();
    await p.connected(2);
    await waitUntil(() => p.recovered.length === 1, { what: 'onRecovered' });
    assert.equal(await publish(push, 'after'), 1);
    await waitForTexts(p, ['before', ...missed, 'after']);
    // A duplicate would arrive before 'after': it is the last message.
    await sleep(100);

    assert.deepEqual(p.texts(), ['before', ...missed, 'after']);
    assert.deepEqual(p.log, ['message:before', ...missed.map((t) => `message:${t}`), 'recovered:3', 'message:after']);
    assert.equal(p.recovered[0].replayed, 3);
    assert.deepEqual(p.resets, []);
    for (const { args } of p.seen) assert.equal(args.length, 1, 'replayed messages are stripped too');
  });

  test('reconnecting with nothing missed reports zero recovered', async () => {
    const push = await daemon();
    const p = page(push.url);
    await p.connected();
    assert.equal(await publish(push, 'seen'), 1);
    await waitForTexts(p, ['seen']);
    p.push.socket.io.engine.close();   // the transport drops; socket.io reconnects by itself
    await p.connected(2);
    await waitUntil(() => p.recovered.length === 1, { what: 'onRecovered' });
    assert.deepEqual(p.recovered[0].replayed, 0);
    assert.deepEqual(p.texts(), ['seen']);
  });

  test('across a restart of the daemon with --state-dir, nothing missed is lost', async () => {
    const state = tempDir('push-core-client-state-');
    cleanups.push(() => fs.rmSync(state, { recursive: true, force: true }));
    const first = await daemon(['--state-dir', state]);
    const relay = await network(first);
    const p = page(relay.url);
    await p.connected();
    assert.equal(await publish(first, 'one'), 1);
    await waitForTexts(p, ['one']);

    relay.cut();
    assert.equal(await publish(first, 'two'), 0);
    await first.stop();
    // A new process on a new port, with the first one's history.
    const second = await daemon(['--state-dir', state], { dir: tempDir() });
    cleanups.push(() => fs.rmSync(second.dir, { recursive: true, force: true }));
    assert.equal(await publish(second, 'three'), 0);
    relay.targetPort = second.port;
    relay.restore();

    await waitUntil(() => p.recovered.length === 1, { what: () => `onRecovered; page log ${JSON.stringify(p.log)}` });
    assert.equal(p.recovered[0].replayed, 2);
    assert.deepEqual(p.log, ['message:one', 'message:two', 'message:three', 'recovered:2']);
    assert.deepEqual(p.resets, []);
  });

  test('an offset older than the recovery window resets, and the page goes on from the current position', async () => {
    const push = await daemon(['--recovery-window', '1s']);
    const relay = await network(push);
    const p = page(relay.url);
    await p.connected();
    assert.equal(await publish(push, 'seen'), 1);
    await waitForTexts(p, ['seen']);

    relay.cut();
    assert.equal(await publish(push, 'lost'), 0);
    await sleep(2500);   // past the 1 s window, with room to spare
    assert.equal(await publish(push, 'also lost'), 0);
    relay.restore();
    await waitUntil(() => p.resets.length === 1, { what: () => `onReset; page log ${JSON.stringify(p.log)}` });
    assert.equal(await publish(push, 'live'), 1);
    await waitForTexts(p, ['seen', 'live']);

    assert.deepEqual(p.log, ['message:seen', 'reset', 'message:live']);
    assert.deepEqual(p.recovered, []);
    assert.equal(typeof p.resets[0].offset, 'string');
  });

  test('a restart without --state-dir resets a page that comes back', async () => {
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const first = await daemon([], { dir });
    const relay = await network(first);
    const p = page(relay.url);
    await p.connected();
    assert.equal(await publish(first, 'one'), 1);
    await waitForTexts(p, ['one']);
    relay.cut();
    await first.stop();
    const second = await daemon([], { dir, socketPath: path.join(dir, 'second.sock') });
    relay.targetPort = second.port;
    relay.restore();
    await waitUntil(() => p.resets.length === 1, { what: () => `onReset; page log ${JSON.stringify(p.log)}` });
    assert.deepEqual(p.recovered, []);
  });

  test('a page started with a rendered offset gets what was published after it', async () => {
    const push = await daemon();
    assert.equal(await publish(push, 'before the page'), 0);
    const rendered = await position(push.socketPath);   // what PHP's position() renders
    assert.equal(await publish(push, 'after render 1'), 0);
    assert.equal(await publish(push, 'after render 2'), 0);

    const p = page(push.url, { offset: rendered });
    await waitUntil(() => p.recovered.length === 1, { what: () => `onRecovered; page log ${JSON.stringify(p.log)}` });
    assert.equal(await publish(push, 'live'), 1);
    await waitForTexts(p, ['after render 1', 'after render 2', 'live']);
    assert.deepEqual(p.log, ['message:after render 1', 'message:after render 2', 'recovered:2', 'message:live']);
  });

  test('a rendered offset with nothing published since recovers nothing and resets nothing', async () => {
    const push = await daemon();
    const p = page(push.url, { offset: await position(push.socketPath) });
    await p.connected();
    await waitUntil(() => p.recovered.length === 1, { what: 'onRecovered' });
    assert.equal(p.recovered[0].replayed, 0);
    assert.deepEqual(p.resets, []);
  });

  test('with recovery off, messages are passed on untouched, even one shaped like an offset', async () => {
    const push = await daemon(['--recovery-window', '0']);
    const p = page(push.url);
    await waitUntil(() => p.push.socket.connected, { what: 'the page to connect' });
    assert.equal(await sendOk(push.socketPath, { namespace: NAMESPACE, event: 'news', data: { offset: 'mine' } }), 1);
    await waitUntil(() => p.seen.length === 1, { what: 'the message' });
    assert.deepEqual(p.seen[0].args, [{ offset: 'mine' }]);
    assert.equal(p.push.offset, undefined);
    assert.equal(p.statuses, 0);
  });
});

// A page that reads too slowly: its queue in push-core (64 messages here)
// fills while the relay holds what the daemon sends. The daemon pings only
// every 2 minutes, so the stalled page is not ended by its heartbeat.
describe('the page helper on a page that reads too slowly', () => {
  const SLOW = ['--max-buffered-messages', '64', '--ping-interval', '120s'];
  const MESSAGES = 20_000;
  const counting = (p) => p.texts().map(Number);

  async function stalledPage(args) {
    const push = await daemon([...SLOW, ...args]);
    const relay = await network(push);
    const p = page(relay.url);
    await waitUntil(() => p.push.socket.connected, { what: 'the page to connect' });
    relay.stall();
    await publishMany(push, MESSAGES);
    relay.unstall();
    return { push, p };
  }

  test('within the history, every message reaches the handlers in order, and no callback fires', async () => {
    const { p } = await stalledPage([]);
    await waitUntil(() => p.seen.length >= MESSAGES, { timeoutMs: 60_000, what: () => `${MESSAGES} messages; the page has ${p.seen.length}` });
    assert.deepEqual(counting(p), Array.from({ length: MESSAGES }, (_, i) => i));
    assert.deepEqual([p.resets, p.misses, p.recovered], [[], [], []]);
  });

  test('beyond the history, onReset fires in-band and messages go on from there', async () => {
    const { push, p } = await stalledPage(['--recovery-max-messages', '1000']);
    await waitUntil(() => p.resets.length === 1, { timeoutMs: 60_000, what: () => `onReset; the page has ${p.seen.length} messages` });
    const reset = p.log.indexOf('reset');
    const before = p.log.slice(0, reset).map((entry) => Number(entry.split(':')[1]));
    assert.ok(before.every((n, i) => n === i), 'in order and without a gap before the reset');
    const after = p.log.slice(reset + 1).map((entry) => Number(entry.split(':')[1]));
    assert.ok(after.every((n, i) => i === 0 || n === after[i - 1] + 1), 'without a gap after the reset');
    // Live messages go on after it.
    await publish(push, 'live');
    await waitUntil(() => p.log.at(-1) === 'message:live', { what: () => `the live message; log ends ${p.log.slice(-3)}` });
    assert.deepEqual(p.misses, []);
  });

  test('with recovery off, onMissed says how many were lost', async () => {
    const { p } = await stalledPage(['--recovery-window', '0']);
    const missed = () => p.misses.reduce((sum, { missed }) => sum + missed, 0);
    await waitUntil(() => p.seen.length + missed() === MESSAGES, {
      timeoutMs: 60_000,
      what: () => `received (${p.seen.length}) + missed (${missed()}) = ${MESSAGES}`,
    });
    assert.ok(missed() > 0, 'the page lost messages');
    const got = counting(p);
    assert.ok(got.every((n, i) => i === 0 || n > got[i - 1]), 'what arrived is in order');
    assert.deepEqual(p.resets, []);
  });
});

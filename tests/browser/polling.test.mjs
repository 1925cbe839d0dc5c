// A browser limited to HTTP long-polling, as one without WebSocket: the
// fallback that is the reason push-core speaks socket.io.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  launchBrowser, screenshot, send, signIn, signOff, unique, waitForMessage,
} from './support/demo.mjs';

describe('carol on long-polling only (?transports=polling)', () => {
  let browser;
  let alice;
  let carol;

  before(async () => {
    browser = await launchBrowser();
    carol = await signIn(browser, 'carol', { query: '?transports=polling' });
    alice = await signIn(browser, 'alice');
  });

  after(async () => {
    if (carol) await screenshot(carol.page, 'carol-polling');
    for (const user of [carol, alice]) {
      if (user) await signOff(user);
    }
    await browser?.close();
  });

  test('receives a private message', async () => {
    const secret = unique('for carol only');
    assert.equal(await send(alice.page, 'user:carol', secret), 1);
    assert.equal(await waitForMessage(carol.page, secret), 'private');
  });

  test('receives a broadcast', async () => {
    const news = unique('polling works too');
    assert.equal(await send(carol.page, 'everyone', news), 2);
    assert.equal(await waitForMessage(carol.page, news), 'broadcast');
    assert.equal(await waitForMessage(alice.page, news), 'broadcast');
  });

  test('sees alice online', async () => {
    await carol.page.locator('#online li[data-user="alice"][data-online="yes"]').waitFor();
  });

  test('never opened a WebSocket', async () => {
    assert.equal(await carol.page.getAttribute('#status', 'data-transport'), 'polling');
    assert.equal(await carol.page.evaluate(() => window.demo.socket.io.engine.transport.name), 'polling');
    assert.deepEqual(carol.websockets, []);
    assert.deepEqual(carol.problems, []);
  });
});

// Recovering messages missed while the network was down: alice's browser
// goes offline (Chromium's network emulation), bob publishes through the PHP
// site meanwhile, the network comes back, and alice's page shows what it
// missed, once each and in order, with the page helper's "recovered" line.
// And what the page does when push-core cannot honour its offset.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  launchBrowser, NAMESPACE, screenshot, send, signIn, signOff, unique, waitForMessage, waitForStatus,
} from './support/demo.mjs';

// An epoch no push-core ever had: an offset from it is what a page holds
// after push-core restarted without state_dir.
const FOREIGN_EPOCH = '0000000000000001';

/** The texts of a page's feed, oldest first (the feed shows the newest on top). */
async function feedTexts(page) {
  const texts = await page.locator('#feed li .text').allTextContents();
  return texts.reverse();
}

describe('a network cut on the demo page', () => {
  let browser;
  let alice;
  let bob;

  before(async () => {
    browser = await launchBrowser();
    alice = await signIn(browser, 'alice');
    bob = await signIn(browser, 'bob');
  });

  after(async () => {
    if (alice) await screenshot(alice.page, 'recovery-alice');
    for (const user of [alice, bob]) {
      if (user) await signOff(user);
    }
    await browser?.close();
  });

  test('messages published while alice was offline arrive once each, in order, and the page says so', async () => {
    const before = unique('before the cut');
    assert.equal(await send(bob.page, 'everyone', before), 2);
    await waitForMessage(alice.page, before);
    // The helper has an offset to come back with: push-core's status and a message.
    await alice.page.waitForFunction(() => window.demo.push.offset !== undefined);

    await alice.context.setOffline(true);
    await waitForStatus(alice.page, 'disconnected');
    const missed = [
      [unique('missed broadcast 1'), 'everyone'],
      [unique('missed private'), 'user:alice'],
      [unique('missed room'), 'room:team:blue'],
      [unique('missed broadcast 2'), 'everyone'],
    ];
    for (const [text, target] of missed) {
      // Only bob's own page (for a broadcast or his room) is connected to take it now.
      const expected = target === 'user:alice' ? 0 : 1;
      assert.equal(await send(bob.page, target, text), expected, `${text} reached alice while she was offline`);
    }
    await alice.context.setOffline(false);

    await alice.page.locator('#recovery[data-state="recovered"]').waitFor();
    assert.equal(await alice.page.textContent('#recovery'), 'missed 4 messages, recovered');
    const after = unique('after the cut');
    assert.equal(await send(bob.page, 'everyone', after), 2);
    await waitForMessage(alice.page, after);

    assert.deepEqual(await feedTexts(alice.page), [before, ...missed.map(([text]) => text), after]);
    assert.equal(await alice.page.getAttribute('#recovery', 'data-count'), '1', 'one recovery, one line');
    assert.deepEqual(alice.problems, []);
  });

  test('an offset push-core cannot honour reloads the page, which says so', async () => {
    // WebSocket only, so that the socket.io CONNECT packet, which carries the
    // offset, goes over a WebSocket the test can route.
    const carol = await signIn(browser, 'carol', { query: '?transports=websocket' });
    try {
      // Once armed, the page's CONNECT carries its sequence from another
      // epoch, as after a restart of push-core without state_dir. Playwright
      // routes the WebSockets of pages loaded after the route is set: load
      // the page again.
      let armed = false;
      const sent = [];
      await carol.context.routeWebSocket(/\/socket\.io\//, (ws) => {
        const server = ws.connectToServer();
        ws.onMessage((message) => {
          const rewritten = armed && typeof message === 'string' && message.startsWith(`40${NAMESPACE},`)
            ? message.replace(/"offset":"[0-9a-f]+-/, `"offset":"${FOREIGN_EPOCH}-`)
            : message;
          sent.push(rewritten);
          server.send(rewritten);
        });
      });
      await carol.page.reload();
      await waitForStatus(carol.page, 'connected');
      await carol.page.waitForFunction(() => window.demo.push.offset !== undefined);

      const first = unique('for carol');
      assert.equal(await send(bob.page, 'user:carol', first), 1);
      await waitForMessage(carol.page, first);
      const offset = await carol.page.evaluate(() => window.demo.push.offset);
      armed = true;
      await carol.page.evaluate(() => window.demo.socket.io.engine.close());

      await carol.page.locator('#recovery[data-state="reset"]').waitFor();
      assert.equal(await carol.page.textContent('#recovery'), 'could not recover, reloaded');
      assert.ok(
        sent.some((message) => message.includes(`"offset":"${FOREIGN_EPOCH}-${offset.split('-')[1]}"`)),
        `the page came back with its offset; it sent ${JSON.stringify(sent)}`,
      );
      // The reloaded page is a fresh one (the feed is empty) that works.
      await waitForStatus(carol.page, 'connected');
      assert.equal(await carol.page.locator('#feed li').count(), 0);
      const next = unique('for carol again');
      assert.equal(await send(bob.page, 'user:carol', next), 1);
      await waitForMessage(carol.page, next);
      assert.deepEqual(carol.problems, []);
    } finally {
      await signOff(carol);
    }
  });
});

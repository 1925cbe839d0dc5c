// Recovering messages missed while the network was down: alice's browser
// goes offline (Chromium's network emulation), bob publishes through the PHP
// site meanwhile, the network comes back, and alice's page shows what it
// missed, once each and in order, with the page helper's "recovered" line.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  launchBrowser, screenshot, send, signIn, signOff, unique, waitForMessage, waitForStatus,
} from './support/demo.mjs';

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
});

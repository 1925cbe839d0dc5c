// The three demo users at once, as in the README's screenshot (docs/demo.png
// is a copy of artifacts/tour-alice.png): a private message, a broadcast and
// a room message, each reaching exactly who it should.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  feedItem, launchBrowser, screenshot, send, signIn, signOff, waitForMessage,
} from './support/demo.mjs';

describe('alice, bob and carol together', () => {
  let browser;
  let alice;
  let bob;
  let carol;

  before(async () => {
    browser = await launchBrowser();
    alice = await signIn(browser, 'alice');
    bob = await signIn(browser, 'bob');
    carol = await signIn(browser, 'carol', { query: '?transports=polling' });
  });

  after(async () => {
    if (alice) {
      await alice.page.setViewportSize({ width: 1180, height: 680 });
      await screenshot(alice.page, 'tour-alice');
    }
    for (const user of [alice, bob, carol]) {
      if (user) await signOff(user);
    }
    await browser?.close();
  });

  test('a broadcast reaches all three', async () => {
    const text = 'Deploy finished: version 2.3 is live';
    assert.equal(await send(carol.page, 'everyone', text), 3);
    for (const { page } of [alice, bob, carol]) {
      assert.equal(await waitForMessage(page, text), 'broadcast');
    }
  });

  test('a room message reaches team:blue, not carol', async () => {
    const text = 'Stand-up moved to 10:30';
    assert.equal(await send(bob.page, 'room:team:blue', text), 2);
    assert.equal(await waitForMessage(alice.page, text), 'team');
    assert.equal(await waitForMessage(bob.page, text), 'team');

    const marker = 'Marker for carol';
    await send(bob.page, 'user:carol', marker);
    await waitForMessage(carol.page, marker);
    assert.equal(await feedItem(carol.page, text).count(), 0);
  });

  test('a private message reaches alice only', async () => {
    const text = 'Lunch at noon? The new place on Rue Oberkampf.';
    assert.equal(await send(bob.page, 'user:alice', text), 1);
    assert.equal(await waitForMessage(alice.page, text), 'private');

    const reply = 'Sure, see you there!';
    assert.equal(await send(alice.page, 'user:bob', reply), 1);
    assert.equal(await waitForMessage(bob.page, reply), 'private');
  });

  test('alice sees bob and carol online', async () => {
    for (const user of ['bob', 'carol']) {
      await alice.page.locator(`#online li[data-user="${user}"][data-online="yes"]`).waitFor();
    }
  });
});

// Two users in two browser contexts of one Chromium: what each one's page
// shows when the other publishes through the PHP site.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  feedItem, launchBrowser, screenshot, send, signIn, signOff, unique, waitForMessage,
} from './support/demo.mjs';

describe('alice and bob, each in a browser context of their own', () => {
  let browser;
  let alice;
  let bob;

  before(async () => {
    browser = await launchBrowser();
    alice = await signIn(browser, 'alice');
    bob = await signIn(browser, 'bob');
  });

  after(async () => {
    if (alice) await screenshot(alice.page, 'alice');
    for (const user of [alice, bob]) {
      if (user) await signOff(user);
    }
    await browser?.close();
  });

  test('the site publishes with the push extension', async () => {
    // run loads the freshly built extension; were loading it to fail, PHP
    // would only warn and the site would quietly use the pure-PHP client.
    const expected = process.env.DEMO_PHP_CLIENT === 'pure' ? /pure-PHP client/ : /push extension/;
    assert.match(await alice.page.textContent('#publisher'), expected);
  });

  test('the default transport upgrades to WebSocket', async () => {
    for (const { page } of [alice, bob]) {
      await page.locator('#status[data-transport="websocket"]').waitFor();
    }
  });

  test('each sees the other online, and carol offline', async () => {
    await alice.page.locator('#online li[data-user="bob"][data-online="yes"]').waitFor();
    await bob.page.locator('#online li[data-user="alice"][data-online="yes"]').waitFor();
    await alice.page.locator('#online li[data-user="carol"][data-online="no"]').waitFor();
  });

  test("a private message to alice shows in alice's page and never in bob's", async () => {
    const secret = unique('for alice only');
    assert.equal(await send(bob.page, 'user:alice', secret), 1, "alice's one tab");
    assert.equal(await waitForMessage(alice.page, secret), 'private');

    // One connection delivers in publish order: once bob's page shows a
    // broadcast published after the private message, the private message
    // would have arrived before it, had it been sent to bob at all.
    const marker = unique('marker');
    assert.equal(await send(alice.page, 'everyone', marker), 2);
    await waitForMessage(bob.page, marker);
    assert.equal(await feedItem(bob.page, secret).count(), 0);
  });

  test('a broadcast shows in both pages', async () => {
    const news = unique('hello everyone');
    assert.equal(await send(alice.page, 'everyone', news), 2);
    assert.equal(await waitForMessage(alice.page, news), 'broadcast');
    assert.equal(await waitForMessage(bob.page, news), 'broadcast');
  });

  test('a room message reaches both members of team:blue', async () => {
    const note = unique('stand-up in five minutes');
    assert.equal(await send(bob.page, 'room:team:blue', note), 2);
    assert.equal(await waitForMessage(alice.page, note), 'team');
    assert.equal(await waitForMessage(bob.page, note), 'team');
  });

  test('the pages raised no errors', () => {
    assert.deepEqual(alice.problems, []);
    assert.deepEqual(bob.problems, []);
  });

  test('when bob leaves, alice sees him offline', async () => {
    await screenshot(bob.page, 'bob');
    await signOff(bob);
    bob = null;
    await alice.page.locator('#online li[data-user="bob"][data-online="no"]').waitFor();
  });
});

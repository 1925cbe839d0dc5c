// The stock socket.io Admin UI, as push-core serves it on its admin
// listener (/admin-ui/, the npm package's ui/dist): an operator opens it,
// logs in to the demo's push-core, and sees the connections of the demo
// pages this test opens. The demo's push-core only allows the site's
// origin; the UI's page needs no origin setting of its own. The screenshot
// is docs/admin-ui.png.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  ADMIN_URL, NAMESPACE, PUSH_URL, launchBrowser, screenshot, send, signIn, signOff, waitForMessage,
} from './support/demo.mjs';

/** The demo's Admin UI credentials (examples/demo/run). */
const USERNAME = 'admin';
const PASSWORD = 'demo';

describe('the socket.io Admin UI on the admin listener', () => {
  let browser;
  let admin;
  const users = [];

  before(async () => {
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
    context.setDefaultTimeout(Number(process.env.BROWSER_TEST_GUARD_MS ?? 10000));
    // The page asks Google Fonts and a CDN for its fonts and icons; the
    // tests talk to 127.0.0.1 only.
    await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (error) => problems.push(error.message));
    admin = { context, page, problems };
  });

  after(async () => {
    await admin?.context.close();
    for (const user of users) await signOff(user);
    await browser?.close();
  });

  /** The number the UI's Namespaces card shows for `namespace`. */
  const socketsCount = (namespace) =>
    admin.page.locator('tr', { has: admin.page.locator(`code:text-is("${namespace}")`) }).locator('td').nth(1);

  test('logs in with the demo credentials to the socket.io listener', async () => {
    const { page } = admin;
    await page.goto(`${ADMIN_URL}/admin-ui/`);
    await page.getByLabel('Server URL').fill(PUSH_URL);
    await page.getByLabel('Username').fill(USERNAME);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.getByText('Connected', { exact: false }).first().waitFor();
    assert.deepEqual(admin.problems, []);
  });

  test('a wrong password is refused with the UI\'s own message', async () => {
    const context = await browser.newContext();
    await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
    const page = await context.newPage();
    await page.goto(`${ADMIN_URL}/admin-ui/`);
    await page.getByLabel('Server URL').fill(PUSH_URL);
    await page.getByLabel('Username').fill(USERNAME);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.getByText('Invalid credentials').waitFor();
    await context.close();
  });

  test('shows the connections of the pages this test opens', async () => {
    users.push(await signIn(browser, 'alice'));
    users.push(await signIn(browser, 'bob'));
    await admin.page.waitForFunction(
      ([locatorText]) => [...document.querySelectorAll('tr')]
        .some((row) => row.querySelector('code')?.textContent === locatorText && row.cells[1]?.textContent.trim() === '2'),
      [NAMESPACE],
    );
    users.push(await signIn(browser, 'carol', { query: '?transports=polling' }));
    await socketsCount(NAMESPACE).filter({ hasText: /^\s*3\s*$/ }).waitFor();
    // The UI's own connection is in /admin.
    await socketsCount('/admin').filter({ hasText: /^\s*1\s*$/ }).waitFor();

    // Some traffic for the charts, then the picture in docs/operations.md
    // once the next server_stats (every 2 s) has brought it.
    const text = 'Deploy finished: version 2.3 is live';
    assert.equal(await send(users[0].page, 'everyone', text), 3);
    await waitForMessage(users[2].page, text);
    await admin.page.waitForTimeout(2500);
    await screenshot(admin.page, 'admin-ui');
  });

  test('shows the pages leaving', async () => {
    await signOff(users.pop());
    await socketsCount(NAMESPACE).filter({ hasText: /^\s*2\s*$/ }).waitFor();
  });
});

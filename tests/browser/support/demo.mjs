// The browser side of the demo tests: headless Chromium (Debian's package,
// driven by playwright-core), signing in to the demo site, sending through
// its form, reading its feed, and screenshots.
//
// The demo stack (examples/demo/run) is started by tests/browser/run.sh,
// which passes its addresses in DEMO_URL, PUSH_URL and ADMIN_URL (push-core's
// admin listener, with the socket.io Admin UI).

import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const DEMO_URL = required('DEMO_URL');
export const PUSH_URL = required('PUSH_URL');
export const ADMIN_URL = required('ADMIN_URL');
export const NAMESPACE = '/demo';

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
// Every wait in a test is bounded by this, so a lost message fails the test
// instead of hanging it. Nothing asserts how long anything took.
const GUARD_MS = Number(process.env.BROWSER_TEST_GUARD_MS ?? 10000);

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the browser tests with tests/browser/run.sh`);
  }
  return value;
}

/**
 * Headless Chromium. playwright-core's launch() gives the browser a fresh,
 * temporary user-data-dir and removes it on close, so no test sees another
 * run's cookies or cache; each newContext() is a separate cookie jar on top.
 */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A new browser context (its own cookies) signed in as `user`, on the demo
 * page with `query` (e.g. "?transports=polling"), once its socket.io
 * connection is up.
 */
export async function signIn(browser, user, { query = '' } = {}) {
  const context = await browser.newContext({ viewport: { width: 1180, height: 760 }, deviceScaleFactor: 1 });
  context.setDefaultTimeout(GUARD_MS);
  const page = await context.newPage();
  // What the page did that a test may want to check: uncaught errors, and
  // the WebSocket connections it opened.
  const problems = [];
  const websockets = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('websocket', (socket) => websockets.push(socket.url()));
  // The sign-in page carries the query to the demo page it redirects to, so
  // this page never runs the client with other settings first.
  await page.goto(`${DEMO_URL}/login${query}`);
  await page.click(`button[name=user][value=${user}]`);
  await page.waitForURL(`${DEMO_URL}/${query}`);
  await waitForStatus(page, 'connected');
  return { context, page, problems, websockets };
}

/** Waits until the page's connection status is `state` (connected, error, ...). */
export async function waitForStatus(page, state) {
  await page.locator(`#status[data-state="${state}"]`).waitFor();
}

/**
 * Sends `text` to `target` (everyone, user:<id>, room:<name>) with the page's
 * form, which posts to the PHP site; returns the recipient count the page
 * shows.
 */
export async function send(page, target, text) {
  const result = page.locator('#send-result');
  const answers = Number((await result.getAttribute('data-answers')) ?? 0);
  await page.selectOption('#target', target);
  await page.fill('#text', text);
  await page.click('#send-form button[type=submit]');
  await page.waitForFunction(
    (previous) => Number(document.getElementById('send-result').dataset.answers ?? 0) > previous,
    answers,
    { timeout: GUARD_MS },
  );
  const state = await result.getAttribute('data-state');
  if (state !== 'sent') {
    throw new Error(`the page could not send: ${await result.textContent()}`);
  }
  return Number(await result.getAttribute('data-recipients'));
}

/** The feed entry whose text is `text`. */
export function feedItem(page, text) {
  return page.locator('#feed li', { has: page.locator('.text', { hasText: text }) });
}

/** Waits for `text` in the page's feed and returns the kind it arrived as (broadcast, private, team). */
export async function waitForMessage(page, text) {
  const item = feedItem(page, text);
  await item.waitFor();
  return item.getAttribute('data-kind');
}

/** Saves a PNG of the page under tests/browser/artifacts/. */
export async function screenshot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  // Finish the feed's arrival animation, so the newest message is not caught half-faded.
  await page.screenshot({ path, animations: 'disabled' });
  return path;
}

/**
 * Closes the context after disconnecting its socket.io client, so that
 * push-core forgets the connection now rather than at the next ping timeout
 * (a long-polling client's closed tab is only noticed then), and the next
 * test's recipient counts are exact.
 */
export async function signOff({ context, page }) {
  await page.evaluate(() => window.demo?.socket.disconnect()).catch(() => {});
  await context.close();
}

/** A unique text, so that no test can see another's message. */
export function unique(label) {
  return `${label} ${Math.random().toString(36).slice(2, 8)}`;
}

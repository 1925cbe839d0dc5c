// A page of another origin, in a browser holding alice's session cookie,
// tries to connect to push-core: the Origin allow-list (--allowed-origin)
// must refuse it on both transports, so no other site can receive alice's
// private messages with her cookie.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import {
  DEMO_URL, NAMESPACE, PUSH_URL, launchBrowser, screenshot, signIn, signOff,
} from './support/demo.mjs';

/** The other site's page: tries each transport once and writes down what happened. */
function otherSitePage() {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>another site</title>
<style>body{font:16px system-ui;margin:2rem} li[data-result=connect]{color:#2f9e44} li{color:#e03131}</style>
</head><body>
<h1>Another site</h1>
<p>This page is not on push-core's --allowed-origin list. It tries to connect with the visitor's cookies:</p>
<ul id="attempts"></ul>
<script src="${DEMO_URL}/socket.io.min.js"></script>
<script>
  for (const transport of ['polling', 'websocket']) {
    const item = document.createElement('li');
    item.dataset.transport = transport;
    item.textContent = transport + ': trying...';
    document.getElementById('attempts').append(item);
    const socket = io(${JSON.stringify(PUSH_URL + NAMESPACE)}, {
      transports: [transport], withCredentials: true, reconnection: false, forceNew: true,
    });
    socket.on('connect', () => {
      item.dataset.result = 'connect';
      item.textContent = transport + ': connected';
    });
    socket.on('connect_error', (error) => {
      item.dataset.result = 'connect_error';
      item.textContent = transport + ': refused (' + error.message + ')';
    });
  }
</script>
</body></html>`;
}

describe('a page from an origin push-core does not allow', () => {
  let browser;
  let alice;
  let server;
  let otherOrigin;

  before(async () => {
    server = createServer((request, response) => {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      response.end(otherSitePage());
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    otherOrigin = `http://127.0.0.1:${server.address().port}`;
    browser = await launchBrowser();
    // alice's context now holds her session cookie for 127.0.0.1, and her
    // own page, on the allowed origin, is connected.
    alice = await signIn(browser, 'alice');
  });

  after(async () => {
    if (alice) await signOff(alice);
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve) ?? resolve());
  });

  test('cannot connect, over polling or WebSocket', async () => {
    const page = await alice.context.newPage();
    await page.goto(`${otherOrigin}/`);
    for (const transport of ['polling', 'websocket']) {
      const attempt = page.locator(`#attempts li[data-transport="${transport}"]`);
      await page.waitForFunction(
        (t) => document.querySelector(`#attempts li[data-transport="${t}"]`)?.dataset.result,
        transport,
      );
      assert.equal(await attempt.getAttribute('data-result'), 'connect_error', await attempt.textContent());
    }
    await screenshot(page, 'disallowed-origin');
    await page.close();
  });
});

// The live part of the demo page: connects to push-core with the stock
// socket.io client (loaded by a <script> tag, the global `io`) through
// push-core's page helper (clients/js), shows what arrives, says what was
// recovered after a cut, publishes through the PHP site, and polls who is
// online.
//
// `?transports=polling` (or `websocket`) restricts the client to those
// transports, as for a browser without WebSocket.

import { connect } from '/push-core-client.mjs';

{
  const settings = document.body.dataset;
  const POLL_ONLINE_MS = 3000;
  const KINDS = { broadcast: 'Broadcast', private: 'Private', team: 'Room' };

  // push-core listens on another port of the same host. Cookies are per
  // host, not per port, so the browser sends this site's session cookie to
  // push-core, which forwards it to /push/auth to learn who we are.
  const url = `${location.protocol}//${location.hostname}:${settings.pushPort}${settings.namespace}`;
  const options = { withCredentials: true };
  const transports = new URLSearchParams(location.search).get('transports');
  if (transports) {
    options.transports = transports.split(',');
  }
  // Set when this page was loaded because the last one could not recover
  // what it missed (see onReset below).
  const RESET_MARK = 'push-demo-reset';
  const reloadedAfterReset = sessionStorage.getItem(RESET_MARK) !== null;
  sessionStorage.removeItem(RESET_MARK);
  let received = 0;   // messages shown
  let connects = 0;   // socket.io connects, the first one included

  const push = connect(window.io, url, {
    ...options,
    // Where PHP's PushClient::position() said the stream was when it
    // rendered this page (absent without it): what is published from then
    // on reaches the page, even before its connection is up.
    offset: settings.pushOffset,
    onRecovered: ({ replayed }) => {
      // A page connecting for the first time at its rendered offset usually
      // missed nothing: only a reconnect, or something missed, is news.
      if (replayed > 0 || connects > 1) {
        showRecovery('recovered', `missed ${replayed} message${replayed === 1 ? '' : 's'}, recovered`);
      }
    },
    onReset: () => {
      // What was missed is gone: a site would reload its state. The demo's
      // state is the page itself, so it reloads. A page that was itself
      // loaded for a reset and has shown nothing yet only says so, so that
      // a reset can never turn into a reload loop.
      if (reloadedAfterReset && received === 0) {
        showRecovery('reset', 'could not recover, reloaded');
        return;
      }
      sessionStorage.setItem(RESET_MARK, '1');
      location.reload();
    },
  });
  const socket = push.socket;
  window.demo = { socket, push };   // for the browser console and the tests

  // --- recovery

  const recovery = document.getElementById('recovery');
  function showRecovery(state, text) {
    recovery.dataset.state = state;
    recovery.dataset.count = Number(recovery.dataset.count ?? 0) + 1;
    recovery.textContent = text;
    recovery.hidden = false;
  }
  if (reloadedAfterReset) {
    showRecovery('reset', 'could not recover, reloaded');
  }

  // --- connection status

  const status = document.getElementById('status');
  function showStatus(state, text) {
    status.dataset.state = state;
    status.querySelector('.label').textContent = text;
  }
  function showConnected() {
    const transport = socket.io.engine.transport.name;
    status.dataset.transport = transport;
    showStatus('connected', `connected · ${transport}`);
  }
  socket.on('connect', () => {
    connects += 1;
    showConnected();
    socket.io.engine.once('upgrade', showConnected);
    refreshOnline();
  });
  socket.on('disconnect', (reason) => showStatus('disconnected', `disconnected (${reason})`));
  socket.on('connect_error', (error) => showStatus('error', `cannot connect: ${error.message}`));

  // --- incoming messages

  const feed = document.getElementById('feed');
  function showMessage(event, message) {
    const item = document.createElement('li');
    item.className = `message message-${event}`;
    item.dataset.kind = event;
    item.dataset.id = message.id;

    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = event === 'team' ? `Room ${message.to}` : KINDS[event];
    const from = document.createElement('span');
    from.className = 'from';
    from.textContent = `from ${message.from}`;
    const time = document.createElement('time');
    time.dateTime = message.sent_at;
    time.textContent = new Date(message.sent_at).toLocaleTimeString();
    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = message.text;

    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.append(tag, from, time);
    item.append(meta, text);
    feed.prepend(item);
    document.getElementById('feed-empty').hidden = true;
  }
  for (const event of Object.keys(KINDS)) {
    push.on(event, (message) => {
      received += 1;
      showMessage(event, message);
    });
  }

  // --- publishing, through PHP

  const form = document.getElementById('send-form');
  const result = document.getElementById('send-result');
  form.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    // form.target would be the form's own target attribute: go through elements.
    const select = form.elements.target;
    const input = form.elements.text;
    const button = form.querySelector('button');
    button.disabled = true;
    result.dataset.state = 'sending';
    result.textContent = 'Sending…';
    try {
      const response = await fetch('/send', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': settings.csrf },
        body: JSON.stringify({ target: select.value, text: input.value }),
      });
      const answer = await response.json();
      if (!response.ok) {
        throw new Error(answer.error ?? `HTTP ${response.status}`);
      }
      const label = select.selectedOptions[0].textContent;
      const n = answer.recipients;
      result.dataset.state = 'sent';
      result.dataset.recipients = n;
      result.textContent = `Sent to ${label}: push-core handed it to ${n} connection${n === 1 ? '' : 's'}.`;
      input.value = '';
    } catch (error) {
      result.dataset.state = 'failed';
      delete result.dataset.recipients;
      result.textContent = `Not sent: ${error.message}`;
    } finally {
      // Counts answers, so that a script can tell two equal answers apart.
      result.dataset.answers = Number(result.dataset.answers ?? 0) + 1;
      button.disabled = false;
      input.focus();
    }
  });

  // --- who is online

  async function refreshOnline() {
    try {
      const response = await fetch('/online', { cache: 'no-store' });
      if (!response.ok) {
        return;
      }
      const { online } = await response.json();
      for (const item of document.querySelectorAll('#online li')) {
        const isOnline = online[item.dataset.user];
        item.dataset.online = isOnline ? 'yes' : 'no';
        item.querySelector('.label').textContent = isOnline ? 'online' : 'offline';
      }
    } catch {
      // The site is restarting; the next poll will tell.
    }
  }
  refreshOnline();
  setInterval(refreshOnline, POLL_ONLINE_MS);
}

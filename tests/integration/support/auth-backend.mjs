// A small real HTTP server playing the site's auth endpoint.
//
// It maps the `sid` cookie to a user, as a PHP session would: a known sid
// gets 200 {"user_id": ..., "rooms": [...]}, anything else 401. Every call
// is recorded with the headers the daemon forwarded, so tests can count
// calls (for the cache) and check what was sent.

import http from 'node:http';

/** The site's users in most tests: two tabs of user 42 share one cookie. */
export const USERS = {
  // user 42, a member of group:7
  'sid-42': { user_id: '42', rooms: ['group:7'] },
  // user 7, with an integer id as some sites send it, in group:8
  'sid-7': { user_id: 7, rooms: ['group:8'] },
  // user 9, also in group:7
  'sid-9': { user_id: '9', rooms: ['group:7'] },
};

/** The Cookie header a browser of `sid` sends. */
export const cookieFor = (sid) => `theme=dark; sid=${sid}; lang=en`;

function sidOf(cookieHeader) {
  for (const part of (cookieHeader ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === 'sid') return value.join('=');
  }
  return undefined;
}

/**
 * Starts the backend on a free loopback port.
 * - `users`: sid -> JSON answer for 200;
 * - `delayMs`: wait this long before answering (a slow site);
 * - `hold`: answer nothing until `release()` is called;
 * - `respond(req, res, call)`: optional override; return true when it
 *   answered the request itself.
 */
export async function startAuthBackend({ users = USERS, delayMs = 0, hold = false, respond } = {}) {
  const calls = [];
  const held = [];
  const server = http.createServer((req, res) => {
    const call = {
      method: req.method,
      url: req.url,
      cookie: req.headers.cookie,
      forwardedFor: req.headers['x-forwarded-for'],
      namespace: req.headers['x-push-namespace'],
      headers: req.headers,
    };
    calls.push(call);
    const answer = () => {
      if (res.destroyed) return;
      if (respond && respond(req, res, call)) return;
      const user = users[sidOf(req.headers.cookie)];
      if (user) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(user));
      } else {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"error":"not logged in"}');
      }
    };
    if (hold) held.push(answer);
    else if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}/push/auth`,
    calls,
    /** Calls made with `sid`. */
    callsFor(sid) {
      return calls.filter((call) => sidOf(call.cookie) === sid);
    },
    /** Answers every held request, and answers new ones at once. */
    release() {
      hold = false;
      for (const answer of held.splice(0)) answer();
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// The site's auth endpoint under load, with the capacity of a small PHP
// pool: it works on at most `workers` calls at a time, each taking
// `callMs`, keeps up to `backlog` more waiting (as PHP-FPM's listen backlog
// does) and answers 503 beyond that.
//
// It runs in a worker thread, with its own event loop, as a real site runs
// in its own process: thousands of socket.io clients in the test's thread
// would otherwise delay its answers and blur what it counts.
//
// Per `sid` cookie it counts the calls received, the 503s it answered, and
// the calls the daemon gave up on before the answer was ready (a timeout on
// the daemon's side, which the daemon may retry).

import http from 'node:http';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

function sidOf(cookieHeader) {
  return /(?:^|;\s*)sid=([^;]*)/.exec(cookieHeader ?? '')?.[1];
}

/**
 * Starts the site; resolves once it listens. `users` maps a sid to the JSON
 * answered with 200; other sids get 401.
 */
export async function startBusySite({ users, workers, callMs, backlog }) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { users, workers, callMs, backlog } });
  const replies = [];
  worker.on('message', (message) => replies.shift()?.(message));
  const ask = (request) => new Promise((resolve) => {
    replies.push(resolve);
    worker.postMessage(request);
  });
  const { port } = await new Promise((resolve, reject) => {
    replies.push(resolve);
    worker.once('error', reject);
  });
  return {
    url: `http://127.0.0.1:${port}/push/auth`,
    /**
     * What the site saw: { perSid: Map sid -> { calls, errors, abandoned,
     * log }, mostWorking }.
     */
    async tally() {
      const { perSid, mostWorking } = await ask('tally');
      return { perSid: new Map(perSid), mostWorking };
    },
    async close() {
      await worker.terminate();
    },
  };
}

function serve({ users, workers, callMs, backlog: backlogSize }) {
  const started = Date.now();
  const perSid = new Map();
  let working = 0;
  let mostWorking = 0;
  const backlog = [];

  const work = (req, res, tally) => {
    working++;
    mostWorking = Math.max(mostWorking, working);
    setTimeout(() => {
      working--;
      tally.log.push(`answered at ${Date.now() - started} ms${res.destroyed ? ' (abandoned)' : ''}`);
      if (res.destroyed) {
        tally.abandoned++;
      } else {
        const user = users[sidOf(req.headers.cookie)];
        res.writeHead(user ? 200 : 401, { 'content-type': 'application/json' });
        res.end(JSON.stringify(user ?? { error: 'not logged in' }));
      }
      backlog.shift()?.();
    }, callMs);
  };

  const server = http.createServer((req, res) => {
    const sid = sidOf(req.headers.cookie);
    if (!perSid.has(sid)) perSid.set(sid, { calls: 0, errors: 0, abandoned: 0, log: [] });
    const tally = perSid.get(sid);
    tally.calls++;
    tally.log.push(`call at ${Date.now() - started} ms`);
    if (working < workers) {
      work(req, res, tally);
    } else if (backlog.length < backlogSize) {
      backlog.push(() => work(req, res, tally));
    } else {
      tally.errors++;
      tally.log.push('answered 503');
      res.writeHead(503, { 'retry-after': '1' });
      res.end('busy');
    }
  });
  server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
  parentPort.on('message', (request) => {
    if (request === 'tally') parentPort.postMessage({ perSid: [...perSid], mostWorking });
  });
}

if (!isMainThread && workerData?.workers) serve(workerData);

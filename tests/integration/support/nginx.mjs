// A real nginx in front of a test daemon, with the repository's
// docs/nginx/push-core.conf included in its server block.
//
// nginx runs in the foreground (`daemon off`, no master process) with a
// generated configuration in its own temporary directory, on a free
// loopback port: no system service, no file outside that directory. The
// only change to the repository's file is the address on its `proxy_pass`
// line, which is the test daemon's instead of the default 127.0.0.1:3000.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { freePort, repoRoot, tempDir } from './daemon.mjs';
import { waitUntil } from './wait.mjs';

/** The configuration file the docs point to. */
export const NGINX_SNIPPET = path.join(repoRoot, 'docs/nginx/push-core.conf');

/** Debian's nginx, or NGINX_BIN. */
export const nginxBinary = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

/** The directive of the snippet (not commented out) that names push-core's default listen address. */
const DEFAULT_UPSTREAM = /^(\s*)proxy_pass http:\/\/127\.0\.0\.1:3000;/gm;

/** The snippet, pointed at `upstream` (host:port). */
export function snippetFor(upstream) {
  const text = fs.readFileSync(NGINX_SNIPPET, 'utf8');
  const found = text.match(DEFAULT_UPSTREAM)?.length ?? 0;
  if (found !== 1) {
    throw new Error(`${NGINX_SNIPPET} should have one \`proxy_pass http://127.0.0.1:3000;\` line; found ${found}`);
  }
  return text.replace(DEFAULT_UPSTREAM, `$1proxy_pass http://${upstream};`);
}

export class Nginx {
  constructor({ child, port, dir }) {
    this.child = child;
    this.port = port;
    this.dir = dir;
    this.url = `http://127.0.0.1:${port}`;
    this.log = '';
    this.exit = null;
    child.stderr.setEncoding('utf8').on('data', (data) => { this.log += data; });
    child.stdout.setEncoding('utf8').on('data', (data) => { this.log += data; });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  /** What nginx logged, errors and the access log, for failure messages. */
  logs() {
    const access = path.join(this.dir, 'access.log');
    return `${this.log}${fs.existsSync(access) ? fs.readFileSync(access, 'utf8') : ''}`;
  }

  async stop() {
    if (this.exit === null) this.child.kill('SIGTERM');
    const guard = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(guard);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts nginx on a free loopback port, proxying /socket.io/ to `daemon`
 * and, when `sitePort` is given, everything else to the site on that
 * loopback port (otherwise every other path is a 404).
 */
export async function startNginx(daemon, { sitePort } = {}) {
  if (!fs.existsSync(nginxBinary)) {
    throw new Error(`no nginx at ${nginxBinary}: apt-get install nginx (scripts/install-deps.sh does), or set NGINX_BIN`);
  }
  const dir = tempDir('push-core-nginx-');
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'push-core.conf'), snippetFor(`127.0.0.1:${daemon.port}`));
  const temp = (name) => `${name}_temp_path ${path.join(dir, name)};`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), `
daemon off;
master_process off;
worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log stderr warn;
events { worker_connections 512; }
http {
    access_log ${path.join(dir, 'access.log')};
    ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n    ')}
    server {
        listen 127.0.0.1:${port};
        server_name localhost;
        # The site.
        location / { ${sitePort === undefined ? 'return 404;' : `proxy_pass http://127.0.0.1:${sitePort};`} }
        include ${path.join(dir, 'push-core.conf')};
    }
}
`);
  const args = ['-p', dir, '-e', 'stderr', '-c', path.join(dir, 'nginx.conf')];
  // What docs/migrating.md runs before each reload: nginx -t.
  const check = spawnSync(nginxBinary, ['-t', '-q', ...args], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw new Error(`nginx -t refused the configuration with ${NGINX_SNIPPET}:\n${check.stderr}`);
  }
  const child = spawn(nginxBinary, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const nginx = new Nginx({ child, port, dir });
  await waitUntil(async () => {
    if (nginx.exit !== null) throw new Error(`nginx exited (${JSON.stringify(nginx.exit)}):\n${nginx.log}`);
    try {
      const response = await fetch(`${nginx.url}/`);
      await response.text();
      return response.status > 0;
    } catch {
      return false;
    }
  }, { intervalMs: 25, what: () => `nginx to listen on ${nginx.url}\n${nginx.log}` });
  return nginx;
}

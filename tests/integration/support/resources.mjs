// What a test started, stopped in reverse order afterwards.

import { startAuthBackend } from './auth-backend.mjs';
import { startDaemon } from './daemon.mjs';

/** Everything a test started, stopped in reverse order afterwards. */
export class Resources {
  constructor() { this.stack = []; }
  add(resource, stop) { this.stack.push(() => stop(resource)); return resource; }
  async daemon(options) { return this.add(await startDaemon(options), (d) => d.cleanup()); }
  async backend(options) { return this.add(await startAuthBackend(options), (b) => b.close()); }
  async release() {
    while (this.stack.length > 0) await this.stack.pop()();
  }
}

// Waiting for a condition, with a time limit that only guards against a
// hang: no test asserts how long anything took.

export const GUARD_MS = Number(process.env.PUSH_CORE_TEST_GUARD_MS ?? 10_000);

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `condition` (sync or async) until it returns a truthy value, which
 * is returned. Fails after `timeoutMs` with a message naming `what`.
 */
export async function waitUntil(condition, { timeoutMs = GUARD_MS, intervalMs = 20, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) {
      const description = typeof what === 'function' ? what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
    }
    await sleep(intervalMs);
  }
}

/** Races `promise` against the guard time. */
export async function withGuard(promise, what, timeoutMs = GUARD_MS) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

import { setLongTimeout } from './timers.js';

/**
 * Sleeps `ms`, or less when `signal` aborts first. Never rejects. Any `ms` is safe: a wait
 * longer than Node's timer limit (about 24.8 days) is slept in chunks instead of firing at once;
 * NaN and negative values sleep 0.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const cancel = setLongTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import lockfile from 'proper-lockfile';
import { MetaspnError } from '../errors.js';
import { LOCK_TIMING } from '../lock-timing.js';
import type { LockPaths } from './payload.js';
import type { RunLockLog } from './types.js';

/**
 * Every change of hands of a run lock (take, break-and-take, release) happens under the gate, a
 * second proper-lockfile directory held for milliseconds. Without it two processes that both judged
 * the holder dead could each remove the directory and each create it anew: both would "win". Under
 * the gate the second one re-inspects, finds the first one's fresh lock and reports it held.
 * The gate also makes (directory, payload) change together, so nobody judges a holder by the payload
 * of the one before it.
 */
export async function withGate<T>(paths: LockPaths, log: RunLockLog, fn: () => Promise<T>): Promise<T> {
  // A SIGKILLed gate holder leaves the directory behind; proper-lockfile takes it over once it is
  // `stale`, so waiting twice that long means something else is wrong.
  const deadline = Date.now() + 2 * LOCK_TIMING.run.stale;
  let release: () => Promise<void>;
  for (;;) {
    try {
      // A key of our own: proper-lockfile keeps one process-wide entry per key, and two acquirers
      // in one process must not share it.
      release = await lockfile.lock(`${paths.gate}#${randomUUID()}`, {
        lockfilePath: paths.gate,
        realpath: false,
        stale: LOCK_TIMING.run.stale,
        update: LOCK_TIMING.run.update,
        onCompromised: (err) => log.warn({ lock: paths.gate, err: err.message }, 'run lock gate compromised'),
      });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      if (Date.now() > deadline) {
        throw new MetaspnError('LOCK_TIMEOUT', `could not enter ${paths.gate} within ${2 * LOCK_TIMING.run.stale} ms`, {
          cause: err,
          hint: 'another metaspn process keeps it busy; check `metaspn lock status` and the processes on this host',
        });
      }
      await sleep(5 + Math.floor(Math.random() * 20));
    }
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}

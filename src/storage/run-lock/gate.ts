import { FileLock } from '../file-lock.js';
import { MetaspnError } from '../../guard/errors.js';
import type { LockPaths } from './payload.js';

/**
 * Every change of hands of a run lock (take, take over, release) and every fenced publish
 * (`RunLock.whileHeld`) happens inside the gate: a kernel lock on `locks/<name>.gate`, held for
 * milliseconds. Inside it the payload cannot change under the one who reads it, so two processes
 * that both judged the holder gone cannot both take the lock (the second re-reads and finds the
 * first), and a holder that checked it still holds the lock keeps it until it leaves the gate.
 * Like every kernel lock the gate dies with its process: a SIGKILLed process never blocks it.
 */

/**
 * Enters the gate, waiting up to `waitMs` (FileLock's one wait loop). Returns the held gate (leave
 * it with `close()`), or null when it stayed busy that long (a stopped or hung process is inside).
 * Throws the file system's error when `locks/` cannot be written, DATA_INVALID (20) on a network
 * file system.
 */
export async function enterGate(paths: LockPaths, waitMs: number): Promise<FileLock | null> {
  const gate = new FileLock(paths.gate);
  try {
    if (await gate.tryFor(waitMs)) return gate;
  } catch (err) {
    gate.close();
    throw err;
  }
  gate.close();
  return null;
}

/** LOCK_TIMEOUT (40): the gate stayed busy for `waitMs`. */
export function gateBusy(paths: LockPaths, waitMs: number): MetaspnError {
  return new MetaspnError('LOCK_TIMEOUT', `run lock ${paths.name}: ${paths.gate} stayed busy for ${waitMs / 1000}s`, {
    hint: 'a stopped or hung metaspn process is inside it (find it with `fuser -v` on that file); it frees the gate when it continues or exits',
  });
}

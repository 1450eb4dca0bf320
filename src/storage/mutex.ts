import fs, { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import lockfile from 'proper-lockfile';
import { setTimeout as sleep } from 'node:timers/promises';
import { MetaspnError } from '../guard/errors.js';
import { LOCK_TIMING } from '../guard/lock-timing.js';

/**
 * proper-lockfile's `fs` option, answering synchronously: a mutex round is a few hundred
 * microseconds, and a trip through the libuv thread pool for each of mkdir, stat and rmdir more
 * than doubles it. One persistent object, so proper-lockfile's mtime-precision probe is cached.
 */
const syncFs: Record<string, unknown> = Object.fromEntries(
  (['mkdir', 'stat', 'rmdir', 'utimes', 'realpath'] as const).map((m) => [
    m,
    (...args: unknown[]) => {
      const cb = args.pop() as (err: unknown, value?: unknown) => void;
      let value: unknown;
      try {
        value = (fs[`${m}Sync`] as (...a: unknown[]) => unknown)(...args);
      } catch (err) {
        return cb(err);
      }
      cb(null, value);
    },
  ]),
);

/** How long a caller waits for a short-held mutex before giving up (a holder that keeps it fresh this long is stuck). */
const WAIT_MS = 5 * 60_000;

/**
 * A cross-process mutex held for short critical sections (a queue round, a store append):
 * a proper-lockfile directory lock at `lockPath`.
 */
export class Mutex {
  private release: (() => Promise<void>) | null = null;

  constructor(
    private readonly lockPath: string,
    private readonly onCompromised: (err: Error) => void,
  ) {}

  /**
   * Waits for the lock, polling with a short capped backoff. (proper-lockfile's own `retries`
   * precomputes every timeout on each call, which costs more than the lock itself here.)
   */
  async acquire(timeoutMs = WAIT_MS): Promise<void> {
    mkdirSync(dirname(this.lockPath), { recursive: true });
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        this.release = await lockfile.lock(dirname(this.lockPath), {
          lockfilePath: this.lockPath,
          realpath: false,
          stale: LOCK_TIMING.mutex.stale,
          update: LOCK_TIMING.mutex.update,
          retries: 0,
          fs: syncFs,
          // The default throws where nothing can catch it; a lost lock only means the next round reloads.
          onCompromised: (err) => this.onCompromised(err),
        });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
        if (Date.now() > deadline) {
          throw new MetaspnError('LOCK_TIMEOUT', `waited ${Math.round(timeoutMs / 1000)}s for ${this.lockPath}`, {
            hint: 'another process holds it and keeps it fresh; see which with `metaspn doctor`',
          });
        }
        await sleep(Math.min(25, 0.5 * 1.5 ** Math.min(attempt, 12)) * (0.5 + Math.random()));
      }
    }
  }

  /**
   * Marks the held lock fresh now. A holder busy for longer than LOCK_TIMING.mutex.update (a
   * compaction, the first replay of a big log) calls it between chunks of work: proper-lockfile's
   * own refresh timer cannot run while the event loop is busy.
   */
  refresh(): void {
    if (!this.release) return;
    const now = Date.now();
    if (now - this.refreshed < 500) return;
    this.refreshed = now;
    try {
      const t = new Date(now);
      fs.utimesSync(this.lockPath, t, t);
    } catch {
      // Gone: the next round notices through onCompromised or a failed release.
    }
  }

  private refreshed = 0;

  async releaseLock(): Promise<void> {
    const r = this.release;
    this.release = null;
    if (r) await r().catch(() => undefined);
  }
}

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { LOCK_TIMING } from '../../guard/lock-timing.js';

/**
 * The cross-process mutex of one queue: a proper-lockfile directory lock at queue/<worker>/.lock.
 * Held only while a process catches up with the log and appends its records.
 */
export class QueueMutex {
  private release: (() => Promise<void>) | null = null;

  constructor(
    private readonly dir: string,
    private readonly onCompromised: (err: Error) => void,
  ) {}

  async acquire(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    this.release = await lockfile.lock(this.dir, {
      lockfilePath: join(this.dir, '.lock'),
      realpath: false,
      stale: LOCK_TIMING.queue.stale,
      update: LOCK_TIMING.queue.update,
      retries: { retries: 20_000, factor: 1.2, minTimeout: 1, maxTimeout: 25, randomize: true },
      // The default throws where nothing can catch it; a lost lock only means the next round reloads.
      onCompromised: (err) => this.onCompromised(err),
    });
  }

  async releaseLock(): Promise<void> {
    const r = this.release;
    this.release = null;
    if (r) await r().catch(() => undefined);
  }
}

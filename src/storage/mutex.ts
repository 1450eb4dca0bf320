import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import lockfile from 'proper-lockfile';
import { LOCK_TIMING } from '../guard/lock-timing.js';

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

  async acquire(): Promise<void> {
    mkdirSync(dirname(this.lockPath), { recursive: true });
    this.release = await lockfile.lock(dirname(this.lockPath), {
      lockfilePath: this.lockPath,
      realpath: false,
      stale: LOCK_TIMING.mutex.stale,
      update: LOCK_TIMING.mutex.update,
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

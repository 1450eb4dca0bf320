import type { RunLockLog } from './types.js';

/** Who a held lock is, for its log lines. */
export interface HeldLockIdentity {
  /** The lock's name (`s1`, a pipeline's name). */
  name: string;
  /** Where the lock lives, for the `lock` field of log lines: a payload file or `pg:<schema>.run_lock/<name>`. */
  where: string;
  log: RunLockLog;
  /** Called once when the lock is found lost; what it throws is logged and ignored. */
  onCompromised: ((err: Error) => void) | undefined;
  /** How this backend loses a lock besides a takeover, for the warning: `its session ended`. */
  lostHow: string;
}

/**
 * What every backend's held run lock shares (the file lock's HeldRunLock, PostgreSQL's
 * HeldPgRunLock): `compromised` set once, logged and told to `onCompromised`; a release started
 * once (every later call gets the same promise) that first stops the watch; the watch timer, which
 * never keeps a process alive; a failing watch logged once. A subclass says how it checks the lock
 * (its poll) and how it lets go of it (`releaseOnce`).
 */
export abstract class HeldRunLockBase {
  #compromised = false;
  #releasing: Promise<void> | null = null;
  #watch: NodeJS.Timeout | null = null;
  #watchFailed = false;

  protected constructor(protected readonly identity: HeldLockIdentity) {}

  get compromised(): boolean {
    return this.#compromised;
  }

  /** True once `release()` was called. */
  protected get releasing(): boolean {
    return this.#releasing !== null;
  }

  /** Calls `poll` every `ms` ms until the lock is released or found lost; `poll` must not throw. */
  protected startWatch(ms: number, poll: () => void): void {
    this.#watch = setInterval(poll, ms);
    this.#watch.unref();
  }

  #stopWatch(): void {
    if (this.#watch) clearInterval(this.#watch);
    this.#watch = null;
  }

  /** The fields of the lost-lock warning besides `lock` and `err` (the lock id, a generation). */
  protected abstract lostFields(): Record<string, unknown>;

  /** Lets go of the lock; called once, after the watch stopped. Must never reject. */
  protected abstract releaseOnce(): Promise<void>;

  /** Never throws. Sets `compromised` once, logs it and calls `onCompromised`. */
  markCompromised(err: Error): void {
    if (this.#releasing || this.#compromised) return;
    this.#compromised = true;
    this.#stopWatch();
    const { name, where, log, onCompromised, lostHow } = this.identity;
    try {
      log.warn({ lock: where, ...this.lostFields(), err: err.message }, `run lock ${name} lost while held (taken over, or ${lostHow}); do not publish`);
      onCompromised?.(err);
    } catch (cbErr) {
      try {
        log.warn({ lock: where, err: String(cbErr) }, 'onCompromised callback threw; ignored');
      } catch {
        // Nothing left to tell.
      }
    }
  }

  /** Never rejects; the same promise at every call. */
  release(): Promise<void> {
    if (!this.#releasing) {
      this.#stopWatch();
      this.#releasing = this.releaseOnce();
    }
    return this.#releasing;
  }

  /** A check of the watch failed: the log hears of it once (the next check, stillHeld or whileHeld looks again). Never throws. */
  protected watchFailed(err: unknown): void {
    if (this.#watchFailed) return;
    this.#watchFailed = true;
    const { name, where, log } = this.identity;
    try {
      log.warn({ event: 'run_lock_check_failed', lock: where, err: (err as Error)?.message ?? String(err) }, `checking that run lock ${name} is still held failed; checking again`);
    } catch {
      // Nothing left to tell.
    }
  }
}

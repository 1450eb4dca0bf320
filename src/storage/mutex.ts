import { FileLock } from './file-lock.js';

/** How long a caller waits for a short-held mutex before LOCK_TIMEOUT (a holder that keeps it this long is stuck). */
const WAIT_MS = 5 * 60_000;

/**
 * A cross-process mutex for short critical sections (a queue round, a store append, a ledger
 * entry): a kernel lock on the file at `lockPath` (see FileLock). A live holder keeps it however
 * slow or stopped it is; a dead one loses it the moment it dies.
 */
export class Mutex {
  readonly #lock: FileLock;

  /** `what` names the guarded thing in errors, e.g. `queue project_rewards`. */
  constructor(
    lockPath: string,
    private readonly what: string,
  ) {
    this.#lock = new FileLock(lockPath);
  }

  /** Waits for the lock; LOCK_TIMEOUT (40) after `timeoutMs` (default five minutes). */
  async acquire(timeoutMs = WAIT_MS): Promise<void> {
    await this.#lock.acquire(timeoutMs, this.what);
  }

  /** The fence before every write under the lock: STATE_CORRUPT (30) unless this holder still has it. */
  assertHeld(): void {
    this.#lock.assertHeld();
  }

  releaseLock(): void {
    this.#lock.release();
  }

  /** Frees the lock and its descriptor (the object can still acquire again later). */
  close(): void {
    this.#lock.close();
  }
}

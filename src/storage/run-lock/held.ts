import type { FileLock } from '../file-lock.js';
import { safeRm } from '../safe-path.js';
import { LOCK_TIMING } from './timing.js';
import { enterGate, gateBusy } from './gate.js';
import { readPayload, writePayload, type LockPaths, type LockPayload } from './payload.js';
import { HeldRunLockBase } from '../../guard/run-lock/held-base.js';
import { describeHolder, RunLockLostError, type BrokenLock, type RunLock, type RunLockLog } from '../../guard/run-lock/types.js';

/** What the holder needs besides its payload: the lock's files, its callbacks and its log. */
export interface HeldOptions {
  paths: LockPaths;
  log: RunLockLog;
  onCompromised: ((err: Error) => void) | undefined;
}

/**
 * One acquisition of a run lock. It holds a kernel lock on its liveness file
 * (`locks/<name>.held.<lock_id>`) from before its payload was written until release; the payload
 * naming its lock_id is what makes it the holder. A takeover rewrites the payload (under the gate),
 * so this holder learns it lost the lock by reading the payload: at `stillHeld()`, at `whileHeld()`
 * and every LOCK_TIMING.run.watchMs ms.
 */
export class HeldRunLock extends HeldRunLockBase implements RunLock {
  #payload: LockPayload;
  readonly #alive: FileLock;
  readonly #paths: LockPaths;
  readonly #log: RunLockLog;
  readonly #lockId: string;

  constructor(
    o: HeldOptions,
    payload: LockPayload & { lock_id: string },
    alive: FileLock,
    readonly broke: BrokenLock | null,
  ) {
    super({ name: o.paths.name, where: o.paths.payload, log: o.log, onCompromised: o.onCompromised, lostHow: 'its liveness file removed' });
    this.#paths = o.paths;
    this.#log = o.log;
    this.#payload = payload;
    this.#lockId = payload.lock_id;
    this.#alive = alive;
    // Cheap (one small read).
    this.startWatch(LOCK_TIMING.run.watchMs, () => this.#poll());
  }

  get payload(): LockPayload {
    return this.#payload;
  }

  stillHeld(): boolean {
    if (this.releasing || this.compromised) return false;
    const lost = this.#lostBecause(false);
    if (lost === null) return true;
    this.markCompromised(lost);
    return false;
  }

  async whileHeld<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.releasing) throw new RunLockLostError(this.#paths.name, null, new Error('released by this holder'));
    const gate = await enterGate(this.#paths, LOCK_TIMING.run.gateWaitMs);
    if (!gate) throw gateBusy(this.#paths, LOCK_TIMING.run.gateWaitMs);
    try {
      if (!this.stillHeld()) {
        const { payload } = readPayload(this.#paths.payload);
        throw new RunLockLostError(this.#paths.name, payload?.active === 1 ? payload : null);
      }
      return await fn();
    } finally {
      gate.close();
    }
  }

  /**
   * Why the lock is no longer this holder's, or null while it is. `lenient` (the poll) passes over
   * a payload it cannot read, which a transient error could cause; `stillHeld` does not.
   */
  #lostBecause(lenient: boolean): Error | null {
    const { raw, payload } = readPayload(this.#paths.payload);
    if (payload === null && raw !== null && lenient) return null;
    if (payload?.lock_id !== this.#lockId || payload.active !== 1) {
      return new Error(`run lock ${this.#paths.name} is now held by ${describeHolder(payload?.active === 1 ? payload : null)}`);
    }
    try {
      this.#alive.assertHeld();
    } catch {
      return new Error(`run lock ${this.#paths.name}: its liveness file ${this.#alive.path} was removed or replaced`);
    }
    return null;
  }

  /** From a timer: must never throw. */
  #poll(): void {
    try {
      if (this.releasing || this.compromised) return;
      const lost = this.#lostBecause(true);
      if (lost) this.markCompromised(lost);
    } catch (err) {
      this.watchFailed(err);
    }
  }

  protected lostFields(): Record<string, unknown> {
    return { lock_id: this.#lockId };
  }

  /** Never rejects. */
  protected async releaseOnce(): Promise<void> {
    let gate: FileLock | null = null;
    try {
      gate = await enterGate(this.#paths, LOCK_TIMING.run.gateWaitMs);
    } catch (err) {
      this.#log.warn({ lock: this.#paths.gate, err: String(err) }, 'run lock gate unavailable');
    }
    try {
      if (gate) this.#markReleased();
      else {
        // Outside the gate the payload may be a successor's in the making: leave it. With our
        // liveness file gone the next acquirer takes the lock over at once.
        this.#log.warn({ lock: this.#paths.payload, lock_id: this.#lockId }, `run lock ${this.#paths.name}: gate busy, freeing the lock without marking the payload released`);
      }
    } finally {
      this.#freeLiveness();
      gate?.close();
    }
  }

  /** The payload, or null when it cannot be read (a link planted there is left for `metaspn doctor`). */
  #payloadOrNull(): LockPayload | null {
    try {
      return readPayload(this.#paths.payload).payload;
    } catch {
      return null;
    }
  }

  /** Inside the gate. Ours is marked `active: 0`; a successor's is left alone. Never throws. */
  #markReleased(): void {
    const payload = this.#payloadOrNull();
    const mine = payload?.lock_id === this.#lockId;
    if (mine && payload.active === 1) {
      try {
        const done: LockPayload = { ...payload, active: 0 };
        writePayload(this.#paths.payload, done);
        this.#payload = done;
      } catch (err) {
        this.#log.warn({ lock: this.#paths.payload, err: String(err) }, 'could not mark the run lock payload released; the next run takes it over');
        return;
      }
    }
    if (mine && !this.compromised) {
      this.#log.info({ lock: this.#paths.payload, lock_id: this.#lockId }, `run lock ${this.#paths.name} released`);
    } else {
      this.#log.warn(
        { lock: this.#paths.payload, lock_id: this.#lockId, now_held_by: !mine && payload?.active === 1 ? payload : null },
        mine
          ? `run lock ${this.#paths.name} was lost while held (its liveness file removed); marked released`
          : `run lock ${this.#paths.name} was taken over while held; leaving the current holder's lock alone`,
      );
    }
  }

  /** Removes our liveness file (only if it is still the one we locked), then frees its lock. Never throws. */
  #freeLiveness(): void {
    try {
      this.#alive.assertHeld();
      safeRm(this.#alive.path, { force: true });
    } catch {
      // Removed or replaced by someone else: not ours to remove.
    }
    this.#alive.close();
  }
}

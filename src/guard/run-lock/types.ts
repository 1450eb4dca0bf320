import { MetaspnError } from '../errors.js';

/** The two log levels the run lock uses; a pino logger fits. */
export interface RunLockLog {
  warn(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
}

/**
 * What to do when a live, unexpired holder has the lock. Exit codes (docs/ARCHITECTURE.md):
 * - `retryable` → BUSINESS_SKIP (11): a non-crash outcome; cron simply tries again next time (the seed's default).
 * - `fail` → LOCK_TIMEOUT (40): the caller said a concurrent run is not expected, so it is an incident.
 *   40 is the only incident code about the lock; it is LOCK_TIMEOUT with a wait of zero.
 * - `wait` → poll until the lock is free (or its holder dies or expires) for up to `lockWaitSec`,
 *   then LOCK_TIMEOUT (40): we waited for the lock and did not get it.
 * "Live" means its liveness file is locked: a holder that is slow, hung or stopped (SIGSTOP) is
 * live however long, and only its TTL or `forceBreak` takes the lock from it.
 */
export type OnLockHeld = 'fail' | 'retryable' | 'wait';

export interface RunLockRequest {
  /** The lock's name: `locks/<name>.lock` (e.g. `s1`). Letters, digits, `.`, `_` and `-`. */
  name: string;
  /**
   * Seconds after `start_ts_utc` when the next acquirer may take the lock over even from a live
   * holder (a hung run). Default 3600.
   */
  ttlSec?: number;
  /**
   * Why this run takes the lock; recorded in the payload and in break warnings. Default `'scheduled'`.
   * With `forceBreak` it must be given explicitly and be non-empty (the default does not count).
   */
  reason?: string;
  /** The command line that runs under the lock, recorded in the payload for operators. */
  cmd: string;
  /** What to do when a live, unexpired holder has the lock (see {@link OnLockHeld}). Default `'retryable'`. */
  onLockHeld?: OnLockHeld;
  /**
   * With `onLockHeld: 'wait'`: how long to wait in seconds before LOCK_TIMEOUT. Default 300
   * (five minutes: long enough for a run that is finishing, short next to a daily cron period).
   * 0 means look once and give up at once. Ignored by the other modes.
   */
  lockWaitSec?: number;
  /**
   * Break whatever holds the lock (the holder seen when the call starts) and take it; a warning
   * names the reason and the old payload. Needs a non-empty `reason`, else UsageError. Default false.
   */
  forceBreak?: boolean;
  /** Clock for `start_ts_utc` and the TTL check, in ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /** With `onLockHeld: 'wait'`: ms between looks at the lock. Default 200. */
  pollMs?: number;
  /**
   * Called once if the lock is lost while held: taken over (TTL passed, `forceBreak`) or its
   * liveness file removed. Noticed at `stillHeld()` and `whileHeld()`, and by a poll of the payload
   * every LOCK_TIMING.run.watchMs (2000) ms. The lock's `compromised` flag is set either way; a
   * callback that throws is logged, not rethrown. Default: none.
   */
  onCompromised?: (err: Error) => void;
  /** Where warnings (breaks, compromise) and info (acquired, waiting, released) go. */
  log: RunLockLog;
}

/** The lock this acquisition took over, and why (StaleReason, or `forced` by `forceBreak`). */
export interface BrokenLock {
  why: StaleReason | 'forced';
  /** The payload it found (null when missing or unreadable). */
  holder: LockPayload | null;
}

/** A held run lock. */
export interface RunLock {
  /** Set when taking the lock took it over from someone else (forced, dead, gone or expired). */
  readonly broke: BrokenLock | null;
  /** The payload as last written by this holder (`active` 1 until `release`, then 0). */
  readonly payload: LockPayload;
  /**
   * True once the lock was lost while held (see `onCompromised`); never set back. A poll notices
   * within LOCK_TIMING.run.watchMs ms; `stillHeld()` checks now; `whileHeld()` is the fence.
   */
  readonly compromised: boolean;
  /**
   * Checks the files now: does the payload still name this acquisition, active, and is its
   * liveness file still the one it locked? Sets `compromised` if not. False after `release()`.
   */
  stillHeld(): boolean;
  /**
   * The fence for writes that only the holder may make (a publish): enters the gate, checks
   * `stillHeld()`, runs `fn` and leaves the gate. Nobody can take the lock over while `fn` runs
   * (every takeover needs the gate), however long it takes. Throws RunLockLostError
   * (STATE_CORRUPT, 30) without calling `fn` when the lock is no longer this holder's or was
   * released, MetaspnError LOCK_TIMEOUT (40) when the gate stays busy for
   * LOCK_TIMING.run.gateWaitMs, and whatever `fn` throws.
   */
  whileHeld<T>(fn: () => T | Promise<T>): Promise<T>;
  /**
   * Writes `active: 0` (keeping the rest of the payload), frees the liveness file's lock and removes
   * the file. Idempotent. Never touches a successor's payload, and never rejects: a failed clean-up
   * is logged; a lock left behind is taken over at once by the next acquirer, since its liveness
   * file is no longer locked once this process exits.
   */
  release(): Promise<void>;
}

/**
 * What a run under the lock sees of it (`runLocked` hands it to the pipeline). Called, it tells
 * whether the lock was lost (`!RunLock.stillHeld()`); `whileHeld` is `RunLock.whileHeld`, the
 * fence around a publish.
 */
export interface RunLockFence {
  (): boolean;
  whileHeld<T>(fn: () => T | Promise<T>): Promise<T>;
  /**
   * The lock itself when its backend can fence a transaction of the same database (PostgreSQL's
   * `whileHeldTx`: the publish's statements run on the lock's session, in the transaction that
   * holds the lock's row). The stores of that backend use it; others use `whileHeld`.
   */
  readonly transactional?: unknown;
}

/**
 * The run locks of a storage backend, one per name (a pipeline's name): the file backend keeps
 * them under `locks/` on kernel locks (`FileRunLocks`); a database backend keeps them in the
 * database. Every implementation passes the same conformance suite
 * (test/unit/run-lock-conformance.ts): one holder at a time; `retryable` (11), `fail` (40) and
 * `wait` (40 after `lockWaitSec`) when held; a TTL takeover and `forceBreak` (with a reason, else
 * 64) that the old holder learns of (`stillHeld` false, `whileHeld` refusing with 30); no takeover
 * while a `whileHeld` function runs; `release` idempotent.
 */
export interface RunLocks {
  /**
   * Takes the lock `opts.name`.
   * @throws MetaspnError BUSINESS_SKIP (11) or LOCK_TIMEOUT (40) when it is held (by `onLockHeld`),
   *   UsageError (64) for a bad name or number, or `forceBreak` without a reason.
   */
  acquire(opts: RunLockRequest): Promise<RunLock>;
  /** Who holds the lock, since when, and whether the next acquirer would take it over. Read-only. */
  status(name: string, opts?: { now?: () => number }): Promise<LockStatus>;
}

/**
 * What `locks/<name>.lock` holds: who runs (or ran last) and why. Operators read it with `cat`;
 * it stays after release with `active: 0` so they can see who ran last.
 */
export interface LockPayload {
  /** 1 while the lock is held, 0 after a clean release. */
  active: 0 | 1;
  pid: number;
  host: string;
  /** ISO-8601 UTC, from the acquirer's clock (`now`). */
  start_ts_utc: string;
  /** The holder may be broken once `start_ts_utc + ttl_sec` has passed. */
  ttl_sec: number;
  reason: string;
  cmd: string;
  /**
   * Not one of the seed's fields: identifies this acquisition, so a holder whose lock was broken
   * never releases or overwrites its successor's lock (pid, host and start can repeat in one process).
   */
  lock_id?: string;
  /**
   * Not one of the seed's fields: 1 for the first acquisition of this lock, one more at each
   * acquisition after it (a takeover included), so operators can tell hands apart at a glance.
   */
  generation?: number;
}

/**
 * Why the next acquirer takes the lock over from the holder its payload names:
 * - `pid_dead`: its liveness file is no longer locked and its pid is not running on this host;
 * - `holder_gone`: its liveness file is no longer locked (or missing) though a process with its pid
 *   runs (the pid was reused, or the holder lost its file), or the payload is unreadable and no
 *   liveness file is locked;
 * - `ttl_expired`: it is alive but `start_ts_utc + ttl_sec` has passed.
 */
export type StaleReason = 'pid_dead' | 'holder_gone' | 'ttl_expired';

/** What `metaspn lock status` prints (and `/api/lock`, the /ops page, `/metrics` and the baseline report read). */
export interface LockStatus {
  /** The payload file, `locks/<name>.lock`. */
  path: string;
  /** The payload file exists. */
  exists: boolean;
  /** The last payload written (active or released); null when missing, empty or unparsable. */
  payload: LockPayload | null;
  /**
   * A live process holds the lock: the active holder's liveness file (`locks/<name>.held.<lock_id>`)
   * is locked, or, with an unreadable payload, some liveness file of this lock is. A holder past its
   * TTL is still `held` (and `stale_reason` says `ttl_expired`).
   */
  held: boolean;
  /** Whether the active holder is alive (its liveness file is locked); null with no active holder. */
  holder_alive: boolean | null;
  /** Why the next acquirer would take the lock over from the active holder; null if it would not. */
  stale_reason: StaleReason | null;
}

/** "pid 123 on host-a since 2026-01-15T12:00:00.000Z (reason: scheduled, cmd: ...)", for messages. */
export function describeHolder(holder: LockPayload | null): string {
  if (!holder) return 'an unknown process (lock payload missing, released or unreadable)';
  return `pid ${holder.pid} on ${holder.host} since ${holder.start_ts_utc} (reason: ${holder.reason}, cmd: ${holder.cmd})`;
}

/**
 * STATE_CORRUPT (30): the run lock is no longer this holder's (taken over after its TTL, by
 * `--force-lock-break`, or its liveness file removed), so it must not publish. Thrown by
 * `RunLock.whileHeld` before its function runs: nothing was written.
 */
export class RunLockLostError extends MetaspnError {
  constructor(name: string, nowHeldBy: LockPayload | null, cause?: Error) {
    super('STATE_CORRUPT', `run lock ${name} was lost during the run: not publishing`, {
      hint: `it is now held by ${describeHolder(nowHeldBy)}; this run's artifacts and manifests are kept, re-run once the lock is free`,
      details: { now_held_by: nowHeldBy },
      ...(cause ? { cause } : {}),
    });
    this.name = 'RunLockLostError';
  }
}

import { UsageError } from '../errors.js';
import type { OnLockHeld, RunLockLog, RunLockRequest } from './types.js';

/** A run lock's name: letters, digits, `.`, `_` and `-`, 1 to 128 characters, not starting with a punctuation mark. */
export const LOCK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The `onLockHeld` modes, in the order messages list them. */
export const ON_LOCK_HELD_MODES: readonly OnLockHeld[] = ['fail', 'retryable', 'wait'];

/** The hint of a lock held by a live holder, on every backend. */
export const LOCK_HELD_HINT = 'wait for it, or --force-lock-break --reason TEXT if it is stuck';

/** A {@link RunLockRequest} with its defaults filled in and its numbers checked. */
export interface ResolvedRunLockRequest {
  name: string;
  /** Seconds, > 0; default 3600. */
  ttlSec: number;
  /** The given reason trimmed, or `'scheduled'`. */
  reason: string;
  cmd: string;
  onLockHeld: OnLockHeld;
  /** Seconds, >= 0; default 300. */
  lockWaitSec: number;
  forceBreak: boolean;
  /** The request's clock, or undefined (the backend's own: Date.now, or the database's). */
  now: (() => number) | undefined;
  /** Milliseconds, > 0; default 200. */
  pollMs: number;
  onCompromised: ((err: Error) => void) | undefined;
  log: RunLockLog;
}

/** Throws UsageError (64) for a name that is not {@link LOCK_NAME}. */
export function assertLockName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !LOCK_NAME.test(name)) throw new UsageError(`lock name must match ${LOCK_NAME.source}, got ${JSON.stringify(name)}`);
}

/**
 * The defaults and rules of a run lock request, the same on every backend (pure).
 * @throws UsageError (64) naming the flag: a bad name, `--lock-ttl-sec` not > 0, `--lock-wait-sec`
 *   not >= 0, `pollMs` not > 0, an unknown `--on-lock-held`, `--force-lock-break` without a reason.
 */
export function resolveRunLockRequest(o: RunLockRequest): ResolvedRunLockRequest {
  assertLockName(o.name);
  const num = (v: number | undefined, dflt: number, flag: string, min: number, minOk: boolean): number => {
    const n = v ?? dflt;
    if (!Number.isFinite(n) || n < min || (!minOk && n === min)) throw new UsageError(`${flag} must be a number ${minOk ? '>=' : '>'} ${min}, got ${String(v)}`);
    return n;
  };
  const onLockHeld = o.onLockHeld ?? 'retryable';
  if (!ON_LOCK_HELD_MODES.includes(onLockHeld)) throw new UsageError(`--on-lock-held must be one of ${ON_LOCK_HELD_MODES.join(', ')}, got ${JSON.stringify(onLockHeld)}`);
  const forceBreak = o.forceBreak ?? false;
  const given = o.reason?.trim() ?? '';
  if (forceBreak && given === '') throw new UsageError('--force-lock-break needs --reason TEXT saying why; it is logged with the holder it breaks');
  return {
    name: o.name,
    ttlSec: num(o.ttlSec, 3600, '--lock-ttl-sec', 0, false),
    reason: given === '' ? 'scheduled' : given,
    cmd: o.cmd,
    onLockHeld,
    lockWaitSec: num(o.lockWaitSec, 300, '--lock-wait-sec', 0, true),
    forceBreak,
    now: o.now,
    pollMs: num(o.pollMs, 200, 'pollMs', 0, false),
    onCompromised: o.onCompromised,
    log: o.log,
  };
}

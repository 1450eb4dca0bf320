import { readFileSync } from 'node:fs';
import { probeLock } from '../file-lock.js';
import { HOST, pidAlive } from '../../queue/owner.js';
import { describeHolder, type LockPayload, type LockStatus, type StaleReason } from '../../guard/run-lock/types.js';
import { livenessFiles, livenessPath, lockPaths, readPayload, type LockPaths } from './payload.js';

export { describeHolder, type LockStatus, type StaleReason };

/** A liveness file's state: `held` while its holder's process lives. */
export type Liveness = 'held' | 'free' | 'missing';

/** One synchronous look at a run lock: its payload and its holder's liveness file. */
export interface LockState {
  raw: string | null;
  payload: LockPayload | null;
  /** The holder the payload names while it says `active: 1`; null when none, released or unreadable. */
  holder: LockPayload | null;
  /** The active holder's liveness file; null with no active holder. */
  liveness: Liveness | null;
  /** With an unreadable payload: some liveness file of this lock is locked (an unknown holder lives). */
  unknownAlive: boolean;
  /** Changes whenever the lock changes hands (each acquisition writes a new lock_id); forceBreak breaks only the holder it saw. */
  fingerprint: string;
}

/**
 * Is this liveness file locked? A file that cannot even be opened (permissions) counts as held:
 * when in doubt a holder is never taken over; `--force-lock-break` remains.
 */
export function probeLiveness(path: string | null): Liveness {
  if (path === null) return 'missing';
  try {
    return probeLock(path);
  } catch {
    return 'held';
  }
}

export function inspectLock(paths: LockPaths): LockState {
  const { raw, payload } = readPayload(paths.payload);
  const holder = payload?.active === 1 ? payload : null;
  const liveness = holder ? probeLiveness(livenessPath(paths, holder.lock_id)) : null;
  const unknownAlive = raw !== null && payload === null && livenessFiles(paths).some((f) => probeLiveness(f) === 'held');
  return { raw, payload, holder, liveness, unknownAlive, fingerprint: raw ?? '' };
}

/**
 * pidAlive, except that a zombie (exited, not yet reaped by its parent: state Z in /proc) counts
 * as dead. Without /proc (macOS) pidAlive's answer stands.
 */
function processRunning(pid: number): boolean {
  if (!pidAlive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch {
    return pidAlive(pid);
  }
}

/** Why the holder of `state` may be taken over now, or null (no active holder, or a live unexpired one). */
export function staleReason(state: LockState, nowMs: number, alive: (pid: number) => boolean = processRunning): StaleReason | null {
  const { holder } = state;
  if (!holder) return null;
  if (state.liveness !== 'held') return holder.host === HOST && !alive(holder.pid) ? 'pid_dead' : 'holder_gone';
  const start = Date.parse(holder.start_ts_utc);
  if (Number.isFinite(start) && nowMs >= start + holder.ttl_sec * 1000) return 'ttl_expired';
  return null;
}

/**
 * Read-only status of a run lock; never writes or removes a file. `now` (ms since the epoch,
 * default Date.now) only feeds the TTL check. Throws UsageError (64) for a bad lock name.
 */
export function readLockStatus(locksDir: string, name: string, opts: { now?: () => number } = {}): LockStatus {
  const paths = lockPaths(locksDir, name);
  const state = inspectLock(paths);
  return {
    path: paths.payload,
    exists: state.raw !== null,
    payload: state.payload,
    held: state.liveness === 'held' || state.unknownAlive,
    holder_alive: state.holder ? state.liveness === 'held' : null,
    stale_reason: staleReason(state, (opts.now ?? Date.now)()),
  };
}

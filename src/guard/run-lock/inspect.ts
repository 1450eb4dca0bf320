import { statSync } from 'node:fs';
import lockfile from 'proper-lockfile';
import { HOST, pidAlive } from '../../queue/owner.js';
import { LOCK_TIMING } from '../lock-timing.js';
import { lockPaths, readPayload, type LockPaths, type LockPayload } from './payload.js';

/** Why a lock that still looks held may be taken over. */
export type StaleReason = 'pid_dead' | 'ttl_expired';

/** One synchronous look at a run lock: its directory and its payload. */
export interface LockState {
  /** proper-lockfile's directory exists (fresh or not). */
  dirExists: boolean;
  /** proper-lockfile's check: the directory exists and its holder refreshed it within `stale`. */
  held: boolean;
  raw: string | null;
  payload: LockPayload | null;
  /** Changes whenever the lock changes hands; forceBreak breaks only the holder it saw. */
  fingerprint: string;
}

export function inspectLock(paths: LockPaths): LockState {
  let dirId = 'none';
  try {
    const st = statSync(paths.dir);
    dirId = `${st.ino}:${st.birthtimeMs}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const held = lockfile.checkSync(paths.dir, { lockfilePath: paths.dir, realpath: false, stale: LOCK_TIMING.run.stale });
  const { raw, payload } = readPayload(paths.payload);
  return { dirExists: dirId !== 'none', held, raw, payload, fingerprint: `${dirId}|${raw ?? ''}` };
}

/** The payload names the current holder only while it says active; a released one names the last. */
export function activeHolder(state: LockState): LockPayload | null {
  return state.dirExists && state.payload?.active === 1 ? state.payload : null;
}

/** Alive, dead, or null when it cannot be told from here (no holder named, or another host). */
export function holderAlive(holder: LockPayload | null, alive: (pid: number) => boolean = pidAlive): boolean | null {
  if (!holder || holder.host !== HOST) return null;
  return alive(holder.pid);
}

export function staleReason(
  holder: LockPayload | null,
  nowMs: number,
  alive: (pid: number) => boolean = pidAlive,
): StaleReason | null {
  if (!holder) return null;
  if (holderAlive(holder, alive) === false) return 'pid_dead';
  const start = Date.parse(holder.start_ts_utc);
  if (Number.isFinite(start) && nowMs >= start + holder.ttl_sec * 1000) return 'ttl_expired';
  return null;
}

/** "pid 123 on host-a since 2026-01-15T12:00:00.000Z (reason: scheduled, cmd: ...)", for messages. */
export function describeHolder(holder: LockPayload | null): string {
  if (!holder) return 'an unknown process (lock payload missing, released or unreadable)';
  return `pid ${holder.pid} on ${holder.host} since ${holder.start_ts_utc} (reason: ${holder.reason}, cmd: ${holder.cmd})`;
}

/** What `metaspn lock status` prints. */
export interface LockStatus {
  /** The payload file, `locks/<name>.lock`. */
  path: string;
  /** The payload file exists. */
  exists: boolean;
  /** The last payload written (active or released); null when missing, empty or unparsable. */
  payload: LockPayload | null;
  /** proper-lockfile's check: the lock directory exists and was refreshed within LOCK_TIMING.run.stale. */
  held: boolean;
  /** Whether the active holder's pid is alive; null with no active holder or one on another host. */
  holder_alive: boolean | null;
  /** Why the next acquirer would take the lock over from the active holder; null if it would not. */
  stale_reason: StaleReason | null;
}

/**
 * Read-only status of a run lock. `now` (default Date.now) only feeds the TTL check.
 */
export function readLockStatus(locksDir: string, name: string, opts: { now?: () => number } = {}): LockStatus {
  const paths = lockPaths(locksDir, name);
  const state = inspectLock(paths);
  const holder = activeHolder(state);
  return {
    path: paths.payload,
    exists: state.raw !== null,
    payload: state.payload,
    held: state.held,
    holder_alive: holderAlive(holder),
    stale_reason: staleReason(holder, (opts.now ?? Date.now)()),
  };
}

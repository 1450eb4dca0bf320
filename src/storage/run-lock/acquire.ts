import { randomUUID } from 'node:crypto';
import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HOST } from '../../queue/owner.js';
import { FileLock } from '../file-lock.js';
import { safeMkdir, safeRm } from '../safe-path.js';
import { MetaspnError, type ErrorCode } from '../../guard/errors.js';
import { LOCK_TIMING } from './timing.js';
import { enterGate } from './gate.js';
import { HeldRunLock } from './held.js';
import { describeHolder, inspectLock, probeLiveness, staleReason, type LockState } from './inspect.js';
import { livenessFiles, livenessPath, lockPaths, writePayload, type LockPaths, type LockPayload } from './payload.js';
import { LOCK_HELD_HINT as HINT, resolveRunLockRequest, type ResolvedRunLockRequest } from '../../guard/run-lock/request.js';
import type { BrokenLock, RunLock, RunLockRequest } from '../../guard/run-lock/types.js';

/** A run lock request on the file backend: where its files are. */
export interface AcquireRunLockOptions extends RunLockRequest {
  /** The workspace's `locks/` folder; created when missing. */
  locksDir: string;
}

type Resolved = ResolvedRunLockRequest & { locksDir: string; now: () => number };

function resolveOptions(o: AcquireRunLockOptions): Resolved {
  return { ...resolveRunLockRequest(o), locksDir: o.locksDir, now: o.now ?? Date.now };
}

/**
 * Takes the run lock `locks/<name>.lock` for one pipeline run. A holder whose liveness file is no
 * longer locked (its process died: `pid_dead`; or it is gone otherwise: `holder_gone`) is taken over
 * at once, and one past its TTL (`ttl_expired`) even while alive, each with a warning naming it. A
 * live holder within its TTL is never taken over, however slow or stopped, except by `forceBreak`;
 * `onLockHeld` says what to do then.
 * Throws UsageError (64) for bad options; MetaspnError BUSINESS_SKIP (11) or LOCK_TIMEOUT (40) when
 * held (see OnLockHeld), also when the gate stays busy for LOCK_TIMING.run.gateWaitMs; DATA_INVALID
 * (20) when `locks/` is on a network file system; the file system's error when it cannot be written.
 */
export async function acquireRunLock(opts: AcquireRunLockOptions): Promise<RunLock> {
  const o = resolveOptions(opts);
  const paths = lockPaths(o.locksDir, o.name);
  safeMkdir(o.locksDir);
  // Seen before queueing for the gate: forceBreak breaks the holder the operator saw, not one that
  // took the lock meanwhile (two forced runs racing: the second finds the first and reports held).
  const forceTarget = o.forceBreak ? inspectLock(paths).fingerprint : null;
  const waitStart = performance.now();
  let waiting = false;
  for (;;) {
    const got = await attempt(paths, o, forceTarget);
    if ('lock' in got) return got.lock;
    const who = got.busy
      ? `run lock ${o.name} is changing hands: another process stayed inside ${paths.gate} for ${LOCK_TIMING.run.gateWaitMs / 1000}s`
      : `run lock ${o.name} is held by ${describeHolder(got.holder)}`;
    const hint = got.busy
      ? 'a stopped or hung metaspn process is inside the gate (`fuser -v` on that file finds it); it frees it when it continues or exits'
      : got.holder
        ? HINT
        : `${HINT}; the payload does not name it, but a live process holds a ${paths.livenessPrefix}* file (\`fuser -v\` finds it)`;
    const details = { lock: paths.payload, holder: got.holder };
    if (o.onLockHeld === 'retryable') throw heldError('BUSINESS_SKIP', who, hint, details);
    if (o.onLockHeld === 'fail') throw heldError('LOCK_TIMEOUT', `${who} (--on-lock-held fail: treated as an incident)`, hint, details);
    const left = waitStart + o.lockWaitSec * 1000 - performance.now();
    if (left <= 0) throw heldError('LOCK_TIMEOUT', `waited ${o.lockWaitSec}s for the lock; ${who}`, hint, details);
    if (!waiting) {
      waiting = true;
      o.log.info({ lock: paths.payload, holder: got.holder, wait_sec: o.lockWaitSec }, `${who}; waiting up to ${o.lockWaitSec}s`);
    }
    await sleep(Math.min(o.pollMs, left));
  }
}

function heldError(code: ErrorCode, message: string, hint: string, details: Record<string, unknown>): MetaspnError {
  return new MetaspnError(code, message, { hint, details });
}

type Attempt = { lock: RunLock } | { holder: LockPayload | null; busy: boolean };
/** Take the lock (taking over `broke`, when set), or leave it to its live `held` holder. */
type Decision = { take: BrokenLock | null } | { held: LockPayload | null };

function decide(state: LockState, o: Resolved, forceTarget: string | null): Decision {
  const forced = forceTarget !== null && forceTarget === state.fingerprint;
  if (state.holder) {
    const why = staleReason(state, o.now()) ?? (forced ? 'forced' : null);
    return why === null ? { held: state.holder } : { take: { why, holder: state.holder } };
  }
  if (state.raw !== null && state.payload === null) {
    // Unreadable payload: a live liveness file says someone holds it, though we cannot say who.
    if (state.unknownAlive) return forced ? { take: { why: 'forced', holder: null } } : { held: null };
    return { take: { why: 'holder_gone', holder: null } };
  }
  return { take: null };
}

/** One look, then (unless a live holder was seen) a second one inside the gate that takes the lock. */
async function attempt(paths: LockPaths, o: Resolved, forceTarget: string | null): Promise<Attempt> {
  // The look outside the gate reports a live holder without queueing at the gate, even while a
  // stopped process sits inside it; only a decision to take is made again inside.
  const seen = decide(inspectLock(paths), o, forceTarget);
  if ('held' in seen) return { holder: seen.held, busy: false };
  const gate = await enterGate(paths, LOCK_TIMING.run.gateWaitMs);
  if (!gate) return { holder: null, busy: true };
  try {
    const state = inspectLock(paths);
    const d = decide(state, o, forceTarget);
    if ('held' in d) return { holder: d.held, busy: false };
    if (d.take) warnTakeover(paths, o, state, d.take);
    return { lock: take(paths, o, state, d.take) };
  } finally {
    gate.close();
  }
}

function warnTakeover(paths: LockPaths, o: Resolved, state: LockState, broke: BrokenLock): void {
  const holder = broke.holder;
  o.log.warn(
    {
      lock: paths.payload,
      why: broke.why,
      pid: holder?.pid ?? null,
      host: holder?.host ?? null,
      start_ts_utc: holder?.start_ts_utc ?? null,
      lock_id: holder?.lock_id ?? null,
      reason: o.reason,
      old_payload: state.payload,
    },
    `breaking run lock ${o.name} held by ${describeHolder(holder)}: ${explain(broke, o)}`,
  );
}

function explain(broke: BrokenLock, o: Resolved): string {
  const h = broke.holder;
  switch (broke.why) {
    case 'pid_dead':
      return `pid ${h?.pid} is not running on ${HOST}`;
    case 'holder_gone':
      return h ? `its liveness file is no longer locked (pid ${h.pid} is not the holder any more)` : 'the payload is unreadable and no live process holds a liveness file';
    case 'ttl_expired':
      return `its ttl of ${h?.ttl_sec}s from ${h?.start_ts_utc} has passed`;
    case 'forced':
      return `--force-lock-break (reason: ${o.reason})`;
  }
}

/**
 * Inside the gate: lock a new liveness file, then write the payload that names it (so the payload
 * never names a liveness file that is not locked yet), then remove liveness files nobody holds.
 */
function take(paths: LockPaths, o: Resolved, state: LockState, broke: BrokenLock | null): RunLock {
  const lockId = randomUUID();
  const alivePath = livenessPath(paths, lockId)!;
  const alive = new FileLock(alivePath);
  if (!alive.tryAcquire()) {
    alive.close();
    throw new MetaspnError('INTERNAL_ERROR', `${alivePath}: a new liveness file is already locked`);
  }
  const payload: LockPayload & { lock_id: string } = {
    active: 1,
    pid: process.pid,
    host: HOST,
    start_ts_utc: new Date(o.now()).toISOString(),
    ttl_sec: o.ttlSec,
    reason: o.reason,
    cmd: o.cmd,
    lock_id: lockId,
    generation: (state.payload?.generation ?? 0) + 1,
  };
  try {
    writePayload(paths.payload, payload);
  } catch (err) {
    safeRm(alivePath, { force: true });
    alive.close();
    throw err;
  }
  removeDeadLiveness(paths, alivePath);
  const held = new HeldRunLock({ paths, log: o.log, onCompromised: o.onCompromised }, payload, alive, broke);
  o.log.info({ lock: paths.payload, ...payload }, `run lock ${o.name} acquired`);
  return held;
}

/**
 * Inside the gate only (nobody creates a liveness file outside it): removes every liveness file
 * of this lock that no process holds, except `keep`. Returns the paths removed. Never throws.
 */
function removeDeadLiveness(paths: LockPaths, keep: string | null = null): string[] {
  const removed: string[] = [];
  try {
    for (const f of livenessFiles(paths)) {
      if (f === keep || probeLiveness(f) !== 'free') continue;
      safeRm(f, { force: true });
      removed.push(f);
    }
  } catch {
    // Left for the next acquirer or `metaspn doctor --repair`.
  }
  return removed;
}

/**
 * For `metaspn doctor --repair`: removes the liveness file at `path` (`locks/<name>.held.<lock_id>`)
 * if no process holds it, checked again inside the gate, so a file being created and locked by an
 * acquirer at that moment is never removed. Never waits: a busy gate leaves the file for later
 * (the next acquirer removes it anyway). Returns whether it removed the file; never throws.
 */
export function removeLivenessIfDead(path: string): boolean {
  const file = basename(path);
  const at = file.lastIndexOf('.held.');
  if (at <= 0) return false;
  let gate: FileLock | null = null;
  try {
    const paths = lockPaths(dirname(path), file.slice(0, at));
    if (livenessPath(paths, file.slice(at + '.held.'.length)) !== path) return false;
    gate = new FileLock(paths.gate);
    if (!gate.tryAcquire() || probeLiveness(path) !== 'free') return false;
    safeRm(path, { force: true });
    return true;
  } catch {
    return false;
  } finally {
    gate?.close();
  }
}

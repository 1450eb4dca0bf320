import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import lockfile from 'proper-lockfile';
import { HOST } from '../../queue/owner.js';
import { MetaspnError, UsageError, type ErrorCode } from '../errors.js';
import { LOCK_TIMING } from '../lock-timing.js';
import { withGate } from './gate.js';
import { activeHolder, describeHolder, inspectLock, staleReason, type StaleReason } from './inspect.js';
import { lockPaths, readPayload, writePayload, type LockPaths, type LockPayload } from './payload.js';
import type { AcquireRunLockOptions, BrokenLock, OnLockHeld, RunLock, RunLockLog } from './types.js';

type Resolved = Required<Omit<AcquireRunLockOptions, 'onCompromised'>> & Pick<AcquireRunLockOptions, 'onCompromised'>;

/** Why a lock is taken over: the holder is dead or expired, its directory went stale, or an operator forced it. */
type BreakWhy = StaleReason | 'not_refreshed' | 'forced';

const MODES: readonly OnLockHeld[] = ['fail', 'retryable', 'wait'];
const HINT = 'wait for it, or --force-lock-break --reason TEXT if it is stuck';

function resolveOptions(o: AcquireRunLockOptions): Resolved {
  const num = (v: number | undefined, dflt: number, flag: string, min: number, minOk: boolean): number => {
    const n = v ?? dflt;
    if (!Number.isFinite(n) || n < min || (!minOk && n === min)) {
      throw new UsageError(`${flag} must be a number ${minOk ? '>=' : '>'} ${min}, got ${String(v)}`);
    }
    return n;
  };
  const onLockHeld = o.onLockHeld ?? 'retryable';
  if (!MODES.includes(onLockHeld)) {
    throw new UsageError(`--on-lock-held must be one of ${MODES.join(', ')}, got ${JSON.stringify(onLockHeld)}`);
  }
  const forceBreak = o.forceBreak ?? false;
  const given = o.reason?.trim() ?? '';
  if (forceBreak && given === '') {
    throw new UsageError('--force-lock-break needs --reason TEXT saying why; it is logged with the holder it breaks');
  }
  return {
    locksDir: o.locksDir,
    name: o.name,
    ttlSec: num(o.ttlSec, 3600, '--lock-ttl-sec', 0, false),
    reason: given === '' ? 'scheduled' : given,
    cmd: o.cmd,
    onLockHeld,
    lockWaitSec: num(o.lockWaitSec, 300, '--lock-wait-sec', 0, true),
    forceBreak,
    now: o.now ?? Date.now,
    pollMs: num(o.pollMs, 200, 'pollMs', 0, false),
    onCompromised: o.onCompromised,
    log: o.log,
  };
}

/**
 * Take the run lock `locks/<name>.lock` for one pipeline run. A holder that is dead on this host,
 * past its TTL, or whose lock directory has not been refreshed for LOCK_TIMING.run.stale ms is
 * taken over with a warning; a live one is handled by `onLockHeld` (see OnLockHeld for exit codes).
 * Throws UsageError (64) for bad options, MetaspnError BUSINESS_SKIP (11) or LOCK_TIMEOUT (40) when held.
 */
export async function acquireRunLock(opts: AcquireRunLockOptions): Promise<RunLock> {
  const o = resolveOptions(opts);
  const paths = lockPaths(o.locksDir, o.name);
  mkdirSync(o.locksDir, { recursive: true });
  // Seen before queueing for the gate: forceBreak breaks the holder the operator saw, not one that
  // took the lock meanwhile (two forced runs racing: the second finds the first and reports held).
  const forceTarget = o.forceBreak ? inspectLock(paths).fingerprint : null;
  const waitStart = performance.now();
  let waiting = false;
  for (;;) {
    const got = await withGate(paths, o.log, () => tryTake(paths, o, forceTarget));
    if ('lock' in got) return got.lock;
    const who = `run lock ${o.name} is held by ${describeHolder(got.holder)}`;
    const hint = got.holder ? HINT : `${HINT}; it is taken over by itself once ${paths.dir} has not been refreshed for ${LOCK_TIMING.run.stale / 1000}s`;
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

type Attempt = { lock: RunLock } | { holder: LockPayload | null };

/** One look under the gate: take the lock if it is free or may be taken over, else name its holder. */
async function tryTake(paths: LockPaths, o: Resolved, forceTarget: string | null): Promise<Attempt> {
  const state = inspectLock(paths);
  const holder = activeHolder(state);
  if (state.dirExists) {
    const why: BreakWhy | null =
      staleReason(holder, o.now()) ??
      (state.held ? null : 'not_refreshed') ??
      (forceTarget === state.fingerprint ? 'forced' : null);
    if (why === null) return { holder };
    o.log.warn(
      {
        lock: paths.payload,
        why,
        pid: holder?.pid ?? null,
        host: holder?.host ?? null,
        start_ts_utc: holder?.start_ts_utc ?? null,
        reason: o.reason,
        old_payload: state.payload,
      },
      `breaking run lock ${o.name} held by ${describeHolder(holder)}: ${explain(why, holder, o)}`,
    );
    // proper-lockfile's unlock only frees a lock this process holds; someone else's goes by hand.
    rmSync(paths.dir, { recursive: true, force: true });
    return take(paths, o, { why, holder: state.payload });
  } else if (state.payload?.active === 1) {
    o.log.warn(
      { lock: paths.payload, pid: state.payload.pid, host: state.payload.host, start_ts_utc: state.payload.start_ts_utc },
      `previous run lock holder ${describeHolder(state.payload)} never released it; its directory is gone, taking the lock`,
    );
  }
  return take(paths, o);
}

function explain(why: BreakWhy, holder: LockPayload | null, o: Resolved): string {
  switch (why) {
    case 'pid_dead':
      return `pid ${holder?.pid} is not running on ${HOST}`;
    case 'ttl_expired':
      return `its ttl of ${holder?.ttl_sec}s from ${holder?.start_ts_utc} has passed`;
    case 'not_refreshed':
      return `its lock directory was not refreshed for ${LOCK_TIMING.run.stale / 1000}s (holder gone or hung)`;
    case 'forced':
      return `--force-lock-break (reason: ${o.reason})`;
  }
}

async function take(paths: LockPaths, o: Resolved, broke: BrokenLock | null = null): Promise<Attempt> {
  const lockId = randomUUID();
  const held = new HeldRunLock(paths, o, lockId, broke);
  let releaseDir: () => Promise<void>;
  try {
    // A key per acquisition: proper-lockfile keeps one process-wide entry per key, and a holder
    // broken by another acquirer in the same process must not share (and free) its successor's.
    releaseDir = await lockfile.lock(held.key, {
      lockfilePath: paths.dir,
      realpath: false,
      stale: LOCK_TIMING.run.stale,
      update: LOCK_TIMING.run.update,
      // The default throws where nothing can catch it.
      onCompromised: (err) => held.markCompromised(err),
    });
  } catch (err) {
    // mkdir is atomic: whoever lost a race to create the directory sees it held.
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED') return { holder: activeHolder(inspectLock(paths)) };
    throw err;
  }
  const payload: LockPayload = {
    active: 1,
    pid: process.pid,
    host: HOST,
    start_ts_utc: new Date(o.now()).toISOString(),
    ttl_sec: o.ttlSec,
    reason: o.reason,
    cmd: o.cmd,
    lock_id: lockId,
  };
  try {
    writePayload(paths.payload, payload);
  } catch (err) {
    await releaseDir().catch(() => undefined);
    throw err;
  }
  held.activate(payload, releaseDir);
  o.log.info({ lock: paths.payload, ...payload }, `run lock ${o.name} acquired`);
  return { lock: held };
}

/** unlock() with this fs forgets proper-lockfile's entry (its refresh timer, its exit hook) and leaves the directory alone. */
const KEEP_DIR_FS = { rmdir: (_path: string, cb: (err: Error | null) => void) => cb(null) };

class HeldRunLock implements RunLock {
  readonly key: string;
  #payload: LockPayload | null = null;
  #releaseDir: (() => Promise<void>) | null = null;
  #compromised = false;
  #releasing: Promise<void> | null = null;
  readonly #log: RunLockLog;

  constructor(
    private readonly paths: LockPaths,
    private readonly o: Resolved,
    private readonly lockId: string,
    readonly broke: BrokenLock | null,
  ) {
    this.key = `${paths.dir}#${lockId}`;
    this.#log = o.log;
  }

  activate(payload: LockPayload, releaseDir: () => Promise<void>): void {
    this.#payload = payload;
    this.#releaseDir = releaseDir;
  }

  get payload(): LockPayload {
    if (!this.#payload) throw new Error('run lock not acquired yet');
    return this.#payload;
  }

  get compromised(): boolean {
    return this.#compromised;
  }

  stillHeld(): boolean {
    if (this.#releasing || this.#compromised) return false;
    const { payload } = readPayload(this.paths.payload);
    if (payload?.lock_id === this.lockId && payload.active === 1 && existsSync(this.paths.dir)) return true;
    this.markCompromised(new Error(`run lock ${this.paths.name} is now held by ${describeHolder(payload?.active === 1 ? payload : null)}`));
    return false;
  }

  /** Called by proper-lockfile from a timer: must never throw. */
  markCompromised(err: Error): void {
    if (this.#releasing || this.#compromised) return;
    this.#compromised = true;
    try {
      this.#log.warn(
        { lock: this.paths.payload, lock_id: this.lockId, err: err.message },
        `run lock ${this.paths.name} lost while held (broken or removed by someone else); do not publish`,
      );
      this.o.onCompromised?.(err);
    } catch (cbErr) {
      try {
        this.#log.warn({ lock: this.paths.payload, err: String(cbErr) }, 'onCompromised callback threw; ignored');
      } catch {
        // Nothing left to tell.
      }
    }
  }

  release(): Promise<void> {
    this.#releasing ??= this.#release();
    return this.#releasing;
  }

  async #release(): Promise<void> {
    try {
      await withGate(this.paths, this.#log, () => this.#releaseUnderGate());
    } catch (err) {
      // The gate only fails when something else is badly wrong; freeing our own lock still beats leaving it.
      this.#log.warn({ lock: this.paths.gate, err: String(err) }, 'run lock gate unavailable; releasing without it');
      await this.#releaseUnderGate();
    }
  }

  /** Never throws. The payload says whose lock it is: ours is marked inactive and freed, a successor's is left alone. */
  async #releaseUnderGate(): Promise<void> {
    const { payload } = readPayload(this.paths.payload);
    const mine = payload !== null && payload.lock_id === this.lockId;
    try {
      if (mine) {
        const done: LockPayload = { ...payload, active: 0 };
        writePayload(this.paths.payload, done);
        this.#payload = done;
      }
    } catch (err) {
      this.#log.warn({ lock: this.paths.payload, err: String(err) }, 'could not mark the run lock payload inactive');
    }
    if (mine && !this.#compromised && this.#releaseDir) {
      try {
        await this.#releaseDir();
        this.#log.info({ lock: this.paths.payload, lock_id: this.lockId }, `run lock ${this.paths.name} released`);
        return;
      } catch (err) {
        // ERELEASED: compromised in the meantime; anything else: the directory goes stale by itself.
        if ((err as NodeJS.ErrnoException).code !== 'ERELEASED') {
          this.#log.warn({ lock: this.paths.dir, err: String(err) }, 'could not remove the run lock directory');
        }
      }
    } else {
      this.#log.warn(
        { lock: this.paths.payload, lock_id: this.lockId, now_held_by: !mine && payload?.active === 1 ? payload : null },
        mine
          ? `run lock ${this.paths.name} was lost while held; leaving its directory alone`
          : `run lock ${this.paths.name} was taken over while held; leaving the current holder's lock alone`,
      );
    }
    await lockfile
      .unlock(this.key, { lockfilePath: this.paths.dir, realpath: false, fs: KEEP_DIR_FS })
      .catch(() => undefined);
  }
}

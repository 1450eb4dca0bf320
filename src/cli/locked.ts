import type { Command } from 'commander';
import { Option } from 'commander';
import type { Logger } from 'pino';
import { UsageError } from '../guard/errors.js';
import type { OnLockHeld, RunLockFence } from '../guard/run-lock.js';
import { stopSignals } from '../runtime/signals.js';
import { Ledger } from '../storage/ledger.js';
import { safeMkdir } from '../storage/safe-path.js';
import { backendFor, pgRunLocks } from './backend.js';
import { nonNegativeInt, positiveInt } from './options.js';
import { commandLine, openSession } from './session.js';

export interface LockFlags {
  onLockHeld?: OnLockHeld;
  lockWaitSec?: number;
  lockTtlSec?: number;
  forceLockBreak?: boolean;
  reason?: string;
  /** `--database-url` of commands that take it: the run lock is then the database's (PgRunLocks). */
  databaseUrl?: string;
}

/** The run-lock flags every pipeline command takes. */
export function addLockFlags(c: Command): Command {
  return c
    .addOption(new Option('--on-lock-held <mode>', 'when another run holds the lock: retryable (exit 11), fail (exit 40), wait').choices(['retryable', 'fail', 'wait']).default('retryable'))
    .option('--lock-wait-sec <n>', 'with --on-lock-held wait: give up after N seconds (exit 40)', nonNegativeInt('--lock-wait-sec'))
    .option('--lock-ttl-sec <n>', 'a lock older than this may be taken over (default 3600)', positiveInt('--lock-ttl-sec'))
    .option('--force-lock-break', 'break the lock whoever holds it (needs --reason)')
    .option('--reason <text>', 'why this run (recorded in the lock and the log)');
}

/** `--skip-check NAME` pairs with `--reason TEXT`: a skipped guardrail is always explained. */
export function skipChecksOf(o: { skipCheck?: string[]; reason?: string }): Map<string, string> {
  const names = o.skipCheck ?? [];
  if (names.length && !o.reason?.trim()) throw new UsageError('--skip-check needs --reason TEXT saying why the alarm is false; it is recorded in the manifest and the ledger');
  return new Map(names.map((n) => [n, o.reason!.trim()]));
}

/**
 * Takes the run lock, runs `fn` with two-stage signal handling, always releases the lock. `fn`
 * gets `lockLost`: called, true once the lock is no longer this run's; `lockLost.whileHeld(write)`
 * runs a publish fenced by the lock (RunLockLostError, exit 30, when it was lost; nothing written).
 * Throws what RunLocks.acquire throws (11, 40, 64 when the lock is held or the flags are bad).
 */
export async function runLocked<T>(
  workspace: string,
  lockName: string,
  runId: string,
  flags: LockFlags,
  fn: (log: Logger, stop: AbortSignal, force: AbortSignal, lockLost: RunLockFence) => Promise<T>,
  /** The log field naming `runId`: a backfill's lines carry `backfill_id`, each date's its own `run_id`. */
  idField: 'run_id' | 'backfill_id' = 'run_id',
): Promise<T> {
  const s = openSession(workspace, { [idField]: runId });
  const log = s.log.logger;
  // On PostgreSQL (--database-url, METASPN_DATABASE_URL or backend.url) the lock is the database's.
  const pg = backendFor(s.cfg, flags.databaseUrl);
  // locks/ with its mode (0750) and never through a link: the run lock's own mkdir leaves the umask's.
  if (!pg) safeMkdir(s.ws.locks);
  const locks = pg ? await pgRunLocks(pg) : s.locks;
  const lock = await locks.acquire({
    name: lockName,
    cmd: commandLine(),
    ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
    ...(flags.onLockHeld !== undefined ? { onLockHeld: flags.onLockHeld } : {}),
    ...(flags.lockWaitSec !== undefined ? { lockWaitSec: flags.lockWaitSec } : {}),
    ...(flags.lockTtlSec !== undefined ? { ttlSec: flags.lockTtlSec } : {}),
    forceBreak: !!flags.forceLockBreak,
    log,
  });
  if (lock.broke?.why === 'forced') {
    const detail = { lock: lockName, reason: lock.payload.reason, previous_holder: lock.broke.holder, cmd: lock.payload.cmd };
    if (pg) {
      // The break is recorded where the lock lives: the database's ledger.
      const { PgStores } = await import('../backend/pg/stores.js');
      const stores = new PgStores({ setting: pg });
      try {
        await stores.ledger.append('lock_break', detail, runId);
      } finally {
        await stores.close();
      }
    } else await new Ledger(s.ws).append('lock_break', detail, runId);
  }
  const lockLost: RunLockFence = Object.assign(() => !lock.stillHeld(), {
    whileHeld: <R>(write: () => R | Promise<R>) => lock.whileHeld(write),
    // On PostgreSQL a publish commits in the transaction that holds the lock's row.
    ...(pg ? { transactional: lock } : {}),
  });
  const signals = stopSignals(log);
  try {
    return await fn(log, signals.stop, signals.force, lockLost);
  } finally {
    // Signals stay handled until the lock is released: a second Ctrl-C must not kill the clean-up.
    await lock.release();
    signals.dispose();
  }
}

import { MetaspnError, StateCorruptError, UsageError } from '../../guard/errors.js';
import { findEntry, pointerChanges, pointerHistory, pointersAt, stepsBack, type PublishNode } from '../../pipeline/pointer-history.js';
import type { RollbackReport } from '../../pipeline/rollback.js';
import type { LedgerEntry } from '../../storage/ledger.js';
import type { CurrentPointer } from '../../storage/pointers.js';
import { StateFileError } from '../../storage/state-file.js';
import type { RollbackOptions } from '../../pipeline/rollback.js';
import type { PgStores } from './stores.js';

/** What `pipeline rollback` asks of the database: the file backend's `RollbackOptions` with the database's stores in place of the workspace. */
export interface PgRollbackOptions extends Omit<RollbackOptions, 'ws'> {
  stores: PgStores;
  /**
   * Runs the commit inside the run lock's fence (`RunLock.whileHeld`): nothing moves once the lock
   * is lost. Default: no fence.
   */
  fence?: <T>(fn: () => Promise<T>) => Promise<T>;
}

/**
 * `pipeline rollback` on PostgreSQL: moves a pipeline's current pointers back (or forward) to a
 * state the database's ledger recorded, N publishes ago or as of entry H, like the file backend's
 * `rollback`; the ledger entry and every pointer change commit in one transaction (both or
 * neither: there is no window for `doctor` to reconcile). Pointers only: no row is touched.
 * @throws UsageError (64) for a `--to-hash` that names no entry (or too few digits, or several);
 *   MetaspnError BUSINESS_REJECT for `--steps` further back than the publishes in effect;
 *   StateCorruptError (30) with `strict` when the ledger or a pointer does not verify;
 *   RunLockLostError (30) from the fence; the mapped driver error (11, 20, 50).
 */
export async function pgRollback(o: PgRollbackOptions): Promise<RollbackReport> {
  const where = `PostgreSQL schema ${o.stores.schema}, table ledger`;
  const read = await o.stores.readLedger();
  const warnings: string[] = [];
  if (read.problems.length) {
    const p = read.problems[0]!;
    if (o.strict) throw new StateCorruptError(`${where}: entry ${p.line}: ${p.rule}`, { hint: 'the ledger does not verify (--strict); keep it for audit' });
    warnings.push(...read.problems.map((x) => `ledger entry ${x.line}: ${x.rule}`));
  }
  const history = pointerHistory(read.entries, o.pipeline);
  if (history.problems.length) {
    if (o.strict) throw new StateCorruptError(`${where}: ${history.problems[0]}`);
    warnings.push(...history.problems);
  }
  let target: PublishNode | null;
  try {
    target = resolveTarget(o, read.entries, history, where);
  } catch (err) {
    if (err instanceof MetaspnError && err.code === 'BUSINESS_REJECT' && warnings.length) {
      throw new MetaspnError('STATE_CORRUPT', `${err.message}; the ledger does not verify (${warnings[0]})`, { hint: 'keep the ledger table for audit' });
    }
    throw err;
  }
  const now = pointersAt(history.current);
  for (const date of new Set([...now.keys(), ...(await o.stores.pointers.partitions(o.pipeline))])) {
    let stored: CurrentPointer | null;
    try {
      stored = await o.stores.pointers.read(o.pipeline, date);
    } catch (err) {
      if (!(err instanceof StateFileError) || o.strict) throw err;
      warnings.push(`${err.message}; it is rewritten from the ledger`);
      continue;
    }
    if (stored?.run_id !== now.get(date)?.run_id) {
      const msg = `pointer of ${date} names run ${stored?.run_id ?? '(none)'} but the ledger says ${now.get(date)?.run_id ?? '(none)'}`;
      if (o.strict) throw new StateCorruptError(msg, { hint: 'pointers were changed outside metaspn; compare with the ledger before rolling back' });
      warnings.push(msg);
    }
  }
  const changes = pointerChanges(now, pointersAt(target));
  if (o.strict) for (const c of changes) if (c.to) await o.verify(c.to);
  const report: RollbackReport = { dry_run: o.dryRun, target_hash: target?.entry.hash ?? null, changes, warnings, ledger_entry: null };
  if (o.dryRun || changes.length === 0) return report;
  const commit = (): Promise<LedgerEntry> =>
    o.stores.movePointers(
      {
        kind: 'rollback',
        detail: { pipeline: o.pipeline, reason: o.reason, ...('steps' in o.target ? { steps: o.target.steps } : { to_hash: o.target.toHash }), target_hash: report.target_hash, changes },
        runId: o.runId,
      },
      changes.map((c) => ({ pipeline: o.pipeline, date: c.date, to: c.to })),
    );
  report.ledger_entry = await (o.fence ? o.fence(commit) : commit());
  for (const c of changes) o.log.warn({ event: 'pointer_rolled_back', date: c.date, from: c.from?.run_id ?? null, to: c.to?.run_id ?? null, reason: o.reason }, `pointer of ${c.date} moved`);
  return report;
}

function resolveTarget(o: PgRollbackOptions, entries: readonly LedgerEntry[], history: ReturnType<typeof pointerHistory>, where: string): PublishNode | null {
  if ('steps' in o.target) {
    const back = stepsBack(history.current, o.target.steps);
    if (!back) {
      let inEffect = 0;
      for (let n = history.current; n; n = n.parent) inEffect++;
      throw new MetaspnError('BUSINESS_REJECT', `--steps ${o.target.steps}: only ${inEffect} publish(es) in effect; nothing that far back`);
    }
    return back.target;
  }
  const e = findEntry(entries, o.target.toHash);
  if (e === 'too_short') throw new UsageError(`--to-hash ${o.target.toHash}: give at least 8 hex digits of the entry's hash`);
  if (e === 'ambiguous') throw new UsageError(`--to-hash ${o.target.toHash} matches more than one ledger entry; give more digits`);
  if (!e) throw new UsageError(`--to-hash ${o.target.toHash} is no entry of the ledger (${where})`, { hint: `list the hashes: SELECT seq, kind, hash FROM ${o.stores.schema}.ledger ORDER BY seq` });
  return history.after.get(e.hash) ?? null;
}

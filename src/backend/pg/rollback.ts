import { UsageError } from '../../guard/errors.js';
import { rollbackWith, type RollbackOptions, type RollbackReport } from '../../pipeline/rollback.js';
import type { LedgerEntry } from '../../storage/ledger.js';
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
 * `pipeline rollback` on PostgreSQL: the rules of the file backend's (rollbackWith) on the
 * database's ledger and pointers; the ledger entry and every pointer change commit in one
 * transaction (both or neither: there is no window for `doctor` to reconcile), inside the run
 * lock's fence when given. Pointers only: no row is touched.
 * @throws as rollbackWith; RunLockLostError (30) from the fence; the mapped driver error (11, 20, 50).
 */
export function pgRollback(o: PgRollbackOptions): Promise<RollbackReport> {
  const where = `PostgreSQL schema ${o.stores.schema}, table ledger`;
  return rollbackWith(o, {
    readLedger: () => o.stores.readLedger(),
    entryAt: (n) => `${where}: entry ${n}`,
    ledgerWhere: where,
    entryWarning: (n) => `ledger entry ${n}`,
    keepHint: 'keep the ledger table for audit',
    noSuchEntry: (hash) => new UsageError(`--to-hash ${hash} is no entry of the ledger (${where})`, { hint: `list the hashes: SELECT seq, kind, hash FROM ${o.stores.schema}.ledger ORDER BY seq` }),
    partitions: () => o.stores.pointers.partitions(o.pipeline),
    readPointer: (date) => o.stores.pointers.read(o.pipeline, date),
    commit: (detail, changes) => {
      // A damaged pointer row is replaced like any other move.
      const commit = (): Promise<LedgerEntry> =>
        o.stores.movePointers(
          { kind: 'rollback', detail, runId: o.runId },
          changes.map((c) => ({ pipeline: o.pipeline, date: c.date, to: c.to })),
        );
      return o.fence ? o.fence(commit) : commit();
    },
  });
}

import { pgRollback } from '../../src/backend/pg/rollback.js';
import type { PgSetting } from '../../src/backend/pg/setting.js';
import { PgStores } from '../../src/backend/pg/stores.js';
import { StateCorruptError } from '../../src/guard/errors.js';
import { rollback as rollbackPipeline, type RollbackOptions, type RollbackReport } from '../../src/pipeline/rollback.js';
import { FileStores, type PipelineStores } from '../../src/pipeline/stores.js';
import type { CurrentPointer } from '../../src/storage/pointers.js';
import { paramsKey } from '../../src/storage/store/artifact-store.js';
import { PIPELINE } from './context.js';

export type { RollbackReport };

/** What `s1 rollback` asks: the core's rollback options, on the workspace's files or on the database `backend` names. */
export interface S1RollbackOptions extends Omit<RollbackOptions, 'pipeline' | 'verify'> {
  /** The database that keeps Season 1's ledger and pointers; null or absent: the workspace's files. */
  backend?: PgSetting | null;
  /** On a database: runs the commit inside the run lock's fence (nothing moves once the lock is lost). */
  fence?: <T>(fn: () => Promise<T>) => Promise<T>;
}

/**
 * `metaspn s1 rollback`: the core's rollback for pipeline s1, verifying a run by its summary. On
 * PostgreSQL the ledger entry and every pointer move commit in one transaction (pgRollback).
 */
export async function rollback(o: S1RollbackOptions): Promise<RollbackReport> {
  const { backend, fence, ...rest } = o;
  if (!backend) {
    const stores = new FileStores(o.ws, (msg, d) => o.log.warn(d, msg));
    try {
      return await rollbackPipeline({ ...rest, pipeline: PIPELINE, verify: (p) => verifySummary(stores, p) });
    } finally {
      await stores.close();
    }
  }
  const stores = new PgStores({ setting: backend });
  try {
    const { ws: _ws, ...asked } = rest;
    return await pgRollback({ ...asked, pipeline: PIPELINE, stores, verify: (p) => verifySummary(stores, p), ...(fence ? { fence } : {}) });
  } finally {
    await stores.close();
  }
}

/** A pointer is restored only when its run's summary manifest succeeded and its output still matches the store. */
async function verifySummary(stores: PipelineStores, p: CurrentPointer): Promise<void> {
  const m = (await stores.manifests.list(PIPELINE, 'publish_season_summary', p.date)).find((x) => x.run_id === p.run_id);
  if (!m || m.status !== 'success') throw new StateCorruptError(`run ${p.run_id} of ${p.date} has no successful summary manifest; refusing to point at it (--strict)`);
  const now = await stores.rows(PIPELINE, 'publish_season_summary').digest(p.date, paramsKey(p.params));
  if (now.sha256 !== m.outputs[0]?.sha256) {
    throw new StateCorruptError(`the summary of ${p.date} (run ${p.run_id}) no longer matches its manifest's hash; refusing (--strict)`);
  }
}

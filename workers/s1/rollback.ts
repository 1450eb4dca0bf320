import { join } from 'node:path';
import { StateCorruptError } from '../../src/guard/errors.js';
import { rollback as rollbackPipeline, type RollbackOptions, type RollbackReport } from '../../src/pipeline/rollback.js';
import { manifestsOf } from '../../src/storage/manifest.js';
import type { CurrentPointer } from '../../src/storage/pointers.js';
import { ArtifactStore, paramsKey } from '../../src/storage/store/artifact-store.js';
import { PIPELINE, STORE_FILES } from './context.js';

export type { RollbackReport };

/** `metaspn s1 rollback`: the core's rollback for pipeline s1, verifying a run by its summary. */
export function rollback(o: Omit<RollbackOptions, 'pipeline' | 'verify'>): Promise<RollbackReport> {
  return rollbackPipeline({ ...o, pipeline: PIPELINE, verify: (p) => verifySummary(o.ws, p) });
}

/** A pointer is restored only when its run's summary manifest succeeded and its output still matches the store. */
async function verifySummary(ws: RollbackOptions['ws'], p: CurrentPointer): Promise<void> {
  const m = manifestsOf(ws, 'publish_season_summary', p.date).find((x) => x.run_id === p.run_id);
  if (!m || m.status !== 'success') throw new StateCorruptError(`run ${p.run_id} of ${p.date} has no successful summary manifest; refusing to point at it (--strict)`);
  const store = new ArtifactStore(join(ws.store, STORE_FILES.publish_season_summary));
  try {
    const now = await store.digest(p.date, paramsKey(p.params));
    if (now.sha256 !== m.outputs[0]?.sha256) {
      throw new StateCorruptError(`the summary of ${p.date} (run ${p.run_id}) no longer matches its manifest's hash; refusing (--strict)`);
    }
  } finally {
    await store.close();
  }
}

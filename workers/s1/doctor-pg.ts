/**
 * `doctor` of Season 1 on PostgreSQL, read only: the database's current pointers of `s1` (one that
 * does not read back is an error), each pointer's run (a successful manifest of every stage whose
 * recorded output hash still matches the stage's rows), and the published dates that are stale
 * (their inputs, config or counted runs changed since), as the file checks do for the workspace.
 */
import { createPool } from '../../src/backend/pg/connection.js';
import { LATEST_VERSION, schemaVersion } from '../../src/backend/pg/migrations.js';
import { PgStores } from '../../src/backend/pg/stores.js';
import type { PgSetting } from '../../src/backend/pg/setting.js';
import type { Findings } from '../../src/doctor/finding.js';
import { StateFileError } from '../../src/storage/state-file.js';
import { paramsKey } from '../../src/storage/store/artifact-store.js';
import type { S1Config } from './config.js';
import { PIPELINE } from './context.js';
import { STAGES } from './ids.js';
import { publishedDatesIn } from './stale.js';
import type { Signal } from './signals.js';

/**
 * Adds what it finds to `f`; paths name the rows (`pg:<schema>.current_pointer/s1/date=D`,
 * `pg:<schema>.manifest/s1/<step>/date=D/run=R`). `signals`: the workspace's inputs as read and
 * checked, or null when they do not read (staleness is then not judged).
 */
export async function checkS1Database(setting: PgSetting, cfg: S1Config, signals: readonly Signal[] | null, f: Findings, workspace: string): Promise<void> {
  // Read only: a schema that is not at this metaspn's version is not touched (the database's own
  // checks report it, and an unreachable server), since the stores would migrate it.
  const probe = createPool(setting.url, 1, 'metaspn doctor');
  try {
    if ((await schemaVersion(probe, setting.schema)) !== LATEST_VERSION) return;
  } catch {
    return;
  } finally {
    await probe.end().catch(() => undefined);
  }
  const stores = new PgStores({ setting });
  try {
    const where = (date: string): string => `pg:${stores.schema}.current_pointer/${PIPELINE}/date=${date}`;
    for (const date of await stores.pointers.partitions(PIPELINE)) {
      let ptr;
      try {
        ptr = await stores.pointers.read(PIPELINE, date);
      } catch (err) {
        if (!(err instanceof StateFileError)) throw err;
        f.error(
          'pointer',
          where(date),
          err.message.slice(err.path.length + 2),
          `re-run the date (metaspn s1 run-local --workspace ${workspace} --date ${date}), or roll the pointers back (metaspn s1 rollback)`,
        );
        continue;
      }
      if (!ptr) continue;
      for (const stage of STAGES) {
        const m = (await stores.manifests.list(PIPELINE, stage, date)).find((x) => x.run_id === ptr.run_id);
        if (!m || m.status !== 'success') {
          f.error('pointer', where(date), `names run ${ptr.run_id}, which has no successful ${stage} manifest`, 're-run the date (metaspn s1 run-local) or roll the pointer back');
          break;
        }
        const now = await stores.rows(PIPELINE, stage).digest(date, paramsKey(m.params));
        if (now.sha256 !== m.outputs[0]?.sha256) {
          f.error(
            'manifest',
            stores.manifestRef(m),
            `its recorded output hash no longer matches the ${stage} rows of ${date}`,
            'the rows changed under a published run: restore the table from a backup, then run doctor again',
          );
        }
      }
    }
    if (!signals) return;
    const all = await publishedDatesIn(stores, cfg, signals);
    const last = all.at(-1)?.date;
    for (const d of all.filter((x) => x.state === 'stale')) {
      f.warn(
        'stale',
        where(d.date),
        `s1 ${d.date} is stale (published by run ${d.run_id}): ${d.reasons.join('; ')}`,
        `re-run the date: metaspn s1 run-local --workspace ${workspace} --date ${d.date}${last && last > d.date ? ` (then the later dates count it anew: metaspn s1 backfill --workspace ${workspace} --start ${d.date} --end ${last} --resume)` : ''}`,
      );
    }
  } finally {
    await stores.close();
  }
}

import type { Command } from 'commander';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';
import { loadConfig } from '../../../src/config/load.js';
import { EXIT } from '../../../src/guard/exit-codes.js';
import { silentLogger } from '../../../src/log.js';
import { createPool, pgError } from '../../../src/backend/pg/connection.js';
import type { PgSetting } from '../../../src/backend/pg/setting.js';
import { PgStores } from '../../../src/backend/pg/stores.js';
import { backendFor, databaseUrlOption } from '../../../src/cli/backend.js';
import { FileStores, type PipelineStores } from '../../../src/pipeline/stores.js';
import { workspacePaths, type WorkspacePaths } from '../../../src/storage/paths.js';
import { safeExists, safeMkdir, safeReadFile, safeRm, safeWriteFile } from '../../../src/storage/safe-path.js';
import { addDays } from '../dates.js';
import { PIPELINE, STORE_FILES, type StageName } from '../context.js';
import { STAGES } from '../ids.js';
import { runS1 } from '../pipeline.js';
import { planRun } from '../plan.js';
import { newRunId } from '../../../src/runtime/run-id.js';
import { setExitCode } from '../../../src/cli/exit.js';
import { printJson } from '../../../src/cli/format.js';
import { openSession } from '../../../src/cli/session.js';

/** The demo inputs shipped with the package. */
const DEMO_INPUTS = fileURLToPath(new URL('../../../../inputs/s1_signals.jsonl', import.meta.url));

class SmokeFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.INTERNAL_ERROR,
  ) {
    super(message);
  }
}

/** Where a smoke run keeps what it writes, and how the checks read it back. */
interface SmokeTarget {
  /** The PostgreSQL backend (a schema of its own), or null: the temporary workspace's files. */
  backend: PgSetting | null;
  /** What the checks read through: the temporary workspace's files or the smoke schema. */
  stores: PipelineStores;
  /** One line for the output: where the run wrote. */
  where: string;
}

/** Each row's text of one Season 1 stage, in write order, as `store export` writes it. */
async function stageLines(t: WorkspacePaths, target: SmokeTarget, stage: StageName): Promise<string[]> {
  if (target.stores instanceof PgStores) {
    const chunks: string[] = [];
    await target.stores.exportRows(PIPELINE, stage, (l) => void chunks.push(l));
    return chunks.join('').split('\n').filter(Boolean);
  }
  const file = join(t.store, STORE_FILES[stage]);
  return safeExists(file) ? safeReadFile(file).split('\n').filter(Boolean) : [];
}

/**
 * The whole pipeline on the bundled demo inputs (with the workspace's config), on the workspace's
 * backend: two consecutive dates, a replay, and checks of artifacts, manifests and pointers read
 * back through the same stores. Never writes into the workspace's store: on files a temporary
 * workspace, on PostgreSQL a schema of its own in the same database. Its summary goes to the
 * workspace's log.
 */
async function smoke(t: WorkspacePaths, target: SmokeTarget): Promise<{ dates: string[]; checks: string[] }> {
  const cfg = loadConfig(t);
  const first = cfg.s1.season.start <= '2026-01-14' && '2026-01-15' <= cfg.s1.season.end ? '2026-01-14' : cfg.s1.season.start;
  const dates = [first, addDays(first, 1) <= cfg.s1.season.end ? addDays(first, 1) : first];
  const checks: string[] = [target.where];
  const stop = new AbortController().signal;
  const run = async (date: string): Promise<void> => {
    const r = await runS1({ ws: t, cfg, backend: target.backend, plan: planRun(cfg.s1, date, undefined), runId: newRunId(), log: silentLogger, stop });
    if (r.exit_code !== 0 || r.status !== 'published') {
      const failed = r.stages.find((s) => s.status === 'failed');
      throw new SmokeFailure(`run-local ${date} exited ${r.exit_code}${failed?.error ? `: ${failed.step}: ${failed.error.message}` : ''}`, r.exit_code || EXIT.INTERNAL_ERROR);
    }
  };
  for (const d of dates) await run(d);
  checks.push(`run-local ${dates.join(' and ')}: exit 0, published`);
  const digest = createHash('sha256');
  for (const stage of STAGES) {
    const lines = await stageLines(t, target, stage);
    if (lines.length === 0) throw new SmokeFailure(`store/${STORE_FILES[stage]} is empty after ${stage}`);
    const ids = lines.map((l) => (JSON.parse(l) as { id: string }).id);
    if (new Set(ids).size !== ids.length) throw new SmokeFailure(`store/${STORE_FILES[stage]} holds a duplicate id`);
    digest.update(`${stage}\n${lines.join('\n')}\n`);
  }
  checks.push('store: four artifact stores, no duplicate id');
  for (const d of dates) {
    for (const step of STAGES) {
      const m = await target.stores.manifests.list(PIPELINE, step, d);
      if (!m.some((x) => x.status === 'success')) throw new SmokeFailure(`no successful manifest for ${step} on ${d}`);
    }
    const ptr = await target.stores.pointers.read(PIPELINE, d);
    if (!ptr) throw new SmokeFailure(`no current pointer for ${d}`);
    const ok = (await target.stores.manifests.list(PIPELINE, 'publish_season_summary', d)).some((m) => m.run_id === ptr.run_id && m.status === 'success');
    if (!ok) throw new SmokeFailure(`the pointer of ${d} names run ${ptr.run_id}, which has no successful summary manifest`);
  }
  checks.push('manifests: every step of every date succeeded; pointers name those runs');
  const before = digest.digest('hex');
  await run(dates[dates.length - 1]!);
  const again = createHash('sha256');
  for (const stage of STAGES) again.update(`${stage}\n${(await stageLines(t, target, stage)).join('\n')}\n`);
  if (again.digest('hex') !== before) throw new SmokeFailure('a replay changed the store: artifacts are not idempotent');
  checks.push('replay: store byte-identical');
  return { dates, checks };
}

/** The schema a smoke run on PostgreSQL writes into: `<schema>_smoke_<8 hex>`, at most 63 characters. */
export function smokeSchema(schema: string): string {
  return `${schema.slice(0, 63 - '_smoke_'.length - 8)}_smoke_${randomBytes(4).toString('hex')}`;
}

/** Drops a smoke schema and everything in it. */
async function dropSchema(setting: PgSetting): Promise<void> {
  const pool = createPool(setting.url, 1, 'metaspn smoke');
  try {
    await pool.query(`DROP SCHEMA IF EXISTS "${setting.schema}" CASCADE`);
  } catch (err) {
    throw pgError(err, setting, `dropping the smoke schema ${setting.schema}`);
  } finally {
    await pool.end();
  }
}

export function registerSmoke(program: Command): void {
  program
    .command('smoke')
    .description('run the whole pipeline on a temporary copy of the demo inputs; prints STATUS=PASS or STATUS=FAIL')
    .option('--workspace <dir>', 'workspace whose config is used and whose log gets the summary', '.')
    .option('--json', 'print JSON')
    .addOption(databaseUrlOption())
    .action(async (o: { workspace: string; json?: boolean; databaseUrl?: string }) => {
      const s = openSession(o.workspace, { module: 'smoke' });
      const t0 = Date.now();
      let result: { status: 'PASS' | 'FAIL'; reason?: string; checks: string[]; exit_code: number };
      const pg = backendFor(loadConfig(s.ws), o.databaseUrl);
      const backend = pg ? { ...pg, schema: smokeSchema(pg.schema) } : null;
      const tmp = mkdtempSync(join(tmpdir(), 'metaspn-smoke-'));
      // The demo inputs are the package's, the config the user's (a link there is read, as everywhere).
      const t = workspacePaths(tmp);
      safeMkdir(t.inputs);
      safeWriteFile(join(t.inputs, 's1_signals.jsonl'), readFileSync(DEMO_INPUTS));
      if (existsSync(s.ws.config)) safeWriteFile(t.config, readFileSync(s.ws.config));
      const stores = backend ? new PgStores({ setting: backend }) : new FileStores(t);
      const where = backend ? `backend: PostgreSQL (${pg!.source}), schema ${backend.schema} of its own` : 'backend: files, a temporary workspace';
      try {
        const r = await smoke(t, { backend, stores, where });
        await stores.close();
        if (backend) await dropSchema(backend);
        safeRm(tmp, { recursive: true, force: true });
        result = { status: 'PASS', checks: r.checks, exit_code: 0 };
      } catch (err) {
        await stores.close().catch(() => undefined);
        // The workspace is kept for forensics (the reason may name its files); a smoke schema is
        // dropped either way, so that failing smokes do not pile schemas up in the database.
        const code = err instanceof SmokeFailure ? err.exitCode : ((err as { exitCode?: number }).exitCode ?? EXIT.INTERNAL_ERROR);
        let kept = `smoke workspace kept at ${tmp}`;
        if (backend)
          await dropSchema(backend).catch(() => {
            kept += `; smoke schema ${backend.schema} not dropped: DROP SCHEMA IF EXISTS ${backend.schema} CASCADE`;
          });
        result = { status: 'FAIL', reason: `${(err as Error).message} (${kept})`, checks: [], exit_code: code };
      }
      const duration_ms = Date.now() - t0;
      s.log.logger[result.status === 'PASS' ? 'info' : 'error'](
        { event: 'smoke_summary', status: result.status, reason: result.reason ?? null, rc: result.exit_code, duration_ms },
        `smoke ${result.status}`,
      );
      setExitCode(result.exit_code);
      if (o.json) return printJson({ ...result, duration_ms });
      const lines = [...result.checks.map((c) => `ok  ${c}`), result.status === 'PASS' ? 'STATUS=PASS' : `STATUS=FAIL reason=${result.reason}`];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

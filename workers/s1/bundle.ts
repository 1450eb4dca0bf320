/**
 * Season 1 as a bundled pipeline: what it adds to the core (its config sections, its commands,
 * its worker modules, its doctor checks, its run starts). The entry point (bin/metaspn.js)
 * registers it; the core never imports this folder.
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { configSection, type WorkspaceConfig } from '../../src/config/load.js';
import type { Findings } from '../../src/doctor/finding.js';
import { DataInvalidError } from '../../src/guard/errors.js';
import type { BundledActions, BundledPipeline } from '../../src/pipeline/bundled.js';
import { resolveS1Config, type S1Config } from './config.js';
import { guardrailsSchema, type Guardrails } from './guardrails.js';
import { STORE_FILES } from './store-files.js';
import { STAGES } from './ids.js';
import { planRun } from './plan.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import type { PgSetting } from '../../src/backend/pg/setting.js';
import type { Signal } from './signals.js';

declare module '../../src/config/load.js' {
  interface WorkspaceConfig {
    /** Season 1's `season` and `attention`, defaults filled in (S1-SPEC). */
    s1: S1Config;
    /** Season 1's guardrails (`guardrails`), defaults filled in. */
    guardrails: Guardrails;
  }
}

/** Season 1's inputs file, under inputs/. */
const INPUT = 's1_signals.jsonl';

async function doctorS1(ws: WorkspacePaths, cfg: WorkspaceConfig, f: Findings, database: PgSetting | null): Promise<void> {
  // Loaded when doctor runs: the other commands do not pay for them.
  const [{ checkPointers }, { readWeightedSignals }, { staleFindings }] = await Promise.all([import('../../src/doctor/records.js'), import('./signals.js'), import('./stale.js')]);
  await checkPointers(ws, 's1', STORE_FILES, f);
  const input = join(ws.inputs, INPUT);
  let signals: Signal[] | null = null;
  if (existsSync(input)) {
    try {
      signals = await readWeightedSignals(input, cfg.s1.attention.weights);
      for (const x of staleFindings(ws, cfg.s1, signals)) f.warn('stale', x.path, x.message, x.fix);
    } catch (err) {
      if (!(err instanceof DataInvalidError)) throw err;
      f.error('input', relative(ws.root, input), err.message.replace(`${input}`, '').replace(/^:/, 'line '), 'fix the line; runs exit 20 until then (nothing is written)');
    }
  }
  // On PostgreSQL, Season 1's pointers, manifests and rows are the database's.
  if (database) await (await import('./doctor-pg.js')).checkS1Database(database, cfg.s1, signals, f, ws.root);
}

/** Season 1, bundled: `metaspn s1 …`, `metaspn smoke`, `metaspn_ops.workers.s1`. */
export const s1Bundle: BundledPipeline = {
  name: 's1',
  command: 'metaspn s1 run-local',
  steps: STAGES.map((name, i) => ({ name, after: i === 0 ? [] : [STAGES[i - 1]!] })),
  config: {
    keys: ['season', 'attention', 'guardrails'],
    resolve: (raw, file, all) => ({
      s1: resolveS1Config(raw === undefined ? undefined : { season: raw.season, attention: raw.attention }, file),
      guardrails: configSection(file, all, 'guardrails', guardrailsSchema),
    }),
  },
  commandNames: ['s1', 'smoke'],
  // Loaded only when `metaspn s1 …` or `metaspn smoke` is asked for.
  commands: async (program: Command) => {
    const [{ registerS1 }, { registerSmoke }] = await Promise.all([import('./cli/s1.js'), import('./cli/smoke.js')]);
    registerS1(program);
    registerSmoke(program);
  },
  // `pipeline run|backfill|rollback s1` are `s1 run-local|backfill|rollback`: one code path.
  actions: async () => {
    const [{ runLocalAction, rollbackAction }, { backfillAction }] = await Promise.all([import('./cli/s1.js'), import('./cli/backfill.js')]);
    return {
      run: runLocalAction as unknown as BundledActions['run'],
      backfill: backfillAction as unknown as BundledActions['backfill'],
      rollback: rollbackAction as unknown as BundledActions['rollback'],
    };
  },
  workerModules: { 'metaspn_ops.workers.s1': new URL('./index.js', import.meta.url).href },
  storeFiles: STORE_FILES,
  queues: STAGES,
  doctor: doctorS1,
  runArgs: (ws, cfg, req) => {
    const plan = planRun(cfg.s1, req.date, req.asOf ?? undefined);
    return { date: plan.date, as_of: plan.as_of, args: ['s1', 'run-local', '--workspace', ws.root, '--date', plan.date, ...(req.asOf ? ['--as-of', plan.as_of] : [])] };
  },
  retry: async (o) => (await import('./cli/retry.js')).retryS1Run(o),
};

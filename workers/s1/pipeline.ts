import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import type { Logger } from 'pino';
import type { WorkspaceConfig } from '../../src/config/load.js';
import { UsageError } from '../../src/guard/errors.js';
import type { RunLockFence } from '../../src/guard/run-lock.js';
import type { PgSetting } from '../../src/backend/pg/setting.js';
import { fileDeps, pgDeps } from '../../src/pipeline/file-deps.js';
import { runExecution, type RunnerDeps, type StepReport } from '../../src/pipeline/runner.js';
import type { PipelineStores } from '../../src/pipeline/stores.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import { assertPointersReadable } from '../../src/storage/pointers.js';
import { PIPELINE, S1Context } from './context.js';
import { s1Execution, type S1Env } from './execution.js';
import { CHECK_NAMES } from './guardrails.js';
import type { RunPlan } from './plan.js';
import { assertRunIdFree } from './run-ids.js';
import { reportOf, type RunReport } from './run-types.js';
import { SubjectGroups } from './signal-table.js';
import { readWeightedSignalTable } from './signals.js';

export type { RunReport, StageReport } from './run-types.js';

export interface PipelineOptions {
  ws: WorkspacePaths;
  cfg: WorkspaceConfig;
  log: Logger;
  /**
   * The database that keeps the rows, manifests, pointers, ledger and queues (PostgreSQL: rows commit
   * with their tasks' acknowledgements); null or absent: the workspace's files.
   */
  backend?: PgSetting | null;
  stop: AbortSignal;
  force?: AbortSignal;
  /**
   * The run lock: called, true when it was lost (then nothing is published); `whileHeld` fences the
   * publish (the ledger entry and the pointer move). Without it (tests, no lock) nothing is fenced.
   */
  lockLost?: RunLockFence;
  /** Guardrails to skip, each with the operator's reason. */
  skipChecks?: ReadonlyMap<string, string>;
  /** Called as each stage of a date ends (progress on a terminal). */
  onStage?: (date: string, r: StepReport) => void;
}

export interface RunOptions extends PipelineOptions {
  plan: RunPlan;
  runId: string;
  retryOf?: string;
}

/**
 * What every date of a run shares, set up once: the inputs read and checked (every line, before
 * anything is written: a bad line exits 20 with nothing half-done), the S1 context.
 * @throws UsageError (64) for an unknown `--skip-check`; StateFileError (30) for a damaged pointer;
 *   DataInvalidError (20) for a bad line of the inputs.
 */
export async function prepareS1(o: PipelineOptions, stores: PipelineStores): Promise<S1Env> {
  for (const name of o.skipChecks?.keys() ?? []) {
    if (!CHECK_NAMES.includes(name)) throw new UsageError(`--skip-check ${name}: no such check`, { hint: `checks: ${CHECK_NAMES.join(', ')}` });
  }
  // Earlier dates' pointers are read mid-run (settlement, guardrails): a damaged one stops the run
  // here, exit 30 naming the file (or the row), before any task could fail on it.
  if (o.backend) for (const d of await stores.pointers.partitions(PIPELINE)) await stores.pointers.read(PIPELINE, d);
  else assertPointersReadable(o.ws, PIPELINE);
  const path = join(o.ws.inputs, 's1_signals.jsonl');
  // The file's sha256 from the bytes the reader reads: one read of the file.
  const sha256 = createHash('sha256');
  const signals = await readWeightedSignalTable(path, o.cfg.s1.attention.weights, sha256);
  const input = { path: relative(o.ws.root, path), sha256: sha256.digest('hex'), rows: signals.length };
  return { ws: o.ws, cfg: o.cfg, s1: new S1Context(o.ws, o.cfg.s1, o.log, { stores, atomic: !!o.backend, signals: new SubjectGroups(signals) }), input };
}

/** The runner's surroundings: the database's stores and queues when `backend` is set, else the workspace's files. Close `stores` when done. */
export function s1Deps(o: Pick<PipelineOptions, 'ws' | 'cfg' | 'log' | 'backend'>): RunnerDeps {
  return o.backend ? pgDeps(o.ws, o.cfg, o.log, o.backend) : fileDeps(o.ws, o.cfg, o.log);
}

/**
 * One date of Season 1 on the pipeline runner: the four stages (each writes its manifest), the
 * stage checks and guardrails, and the date's current pointer, moved only when everything passed.
 * The caller holds the run lock.
 */
export async function runS1(o: RunOptions): Promise<RunReport> {
  // Under the run lock: no other run can take the id between this check and the first manifest.
  assertRunIdFree(o.ws, o.runId);
  const d = s1Deps(o);
  let env: S1Env | null = null;
  try {
    env = await prepareS1(o, d.stores);
    const exec = s1Execution(env, { single: true });
    const r = await runExecution(
      exec,
      {
        plan: { partition: o.plan.date, as_of: o.plan.as_of, provisional: o.plan.provisional },
        runId: o.runId,
        ...(o.retryOf ? { retryOf: o.retryOf } : {}),
        by: `run ${o.runId}`,
        stop: o.stop,
        ...(o.force ? { force: o.force } : {}),
        ...(o.lockLost ? { lockLost: o.lockLost } : {}),
        ...(o.skipChecks ? { skipChecks: o.skipChecks } : {}),
        ...(o.onStage ? { onStep: (s: StepReport) => o.onStage!(o.plan.date, s) } : {}),
      },
      d,
    );
    return reportOf(r, exec.paramsOf(o.runId));
  } finally {
    await env?.s1.close();
    await d.stores.close();
  }
}

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join, relative } from 'node:path';
import type { Logger } from 'pino';
import type { WorkspaceConfig } from '../../src/config/load.js';
import { EXIT } from '../../src/guard/exit-codes.js';
import { UsageError } from '../../src/guard/errors.js';
import type { RunLockFence } from '../../src/guard/run-lock.js';
import { makeOwner } from '../../src/queue/owner.js';
import { Ledger } from '../../src/storage/ledger.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import { assertPointersReadable } from '../../src/storage/pointers.js';
import { PIPELINE, S1Context } from './context.js';
import { CHECK_NAMES } from './guardrails.js';
import { STAGES } from './ids.js';
import { groupBySubject } from './math.js';
import { subjectsToScore, type RunPlan } from './plan.js';
import { publishRun } from './publish.js';
import { assertRunIdFree } from './run-ids.js';
import { reportOf, type DateRun, type RunReport, type S1Env } from './run-types.js';
import { readWeightedSignals } from './signals.js';
import { memory, runStageFor } from './stage-step.js';

export type { RunReport, StageReport } from './run-types.js';

export interface PipelineOptions {
  ws: WorkspacePaths;
  cfg: WorkspaceConfig;
  log: Logger;
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
  onStage?: (date: string, r: RunReport['stages'][number]) => void;
}

export interface RunOptions extends PipelineOptions {
  plan: RunPlan;
  runId: string;
  retryOf?: string;
}

/**
 * What every date of a run shares, set up once: the inputs read and checked (every line, before
 * anything is written: a bad line exits 20 with nothing half-done), the stores, the ledger.
 */
export async function prepareS1(o: PipelineOptions, by: string): Promise<{ env: S1Env; groups: Awaited<ReturnType<typeof loadSignals>>['groups'] }> {
  for (const name of o.skipChecks?.keys() ?? []) {
    if (!CHECK_NAMES.includes(name)) throw new UsageError(`--skip-check ${name}: no such check`, { hint: `checks: ${CHECK_NAMES.join(', ')}` });
  }
  // Earlier dates' pointers are read mid-run (settlement, guardrails): a damaged one stops the run
  // here, exit 30 naming the file, before any task could fail on it.
  assertPointersReadable(o.ws, PIPELINE);
  const { groups, input } = await loadSignals(o.ws, o.cfg);
  const s1 = new S1Context(o.ws, o.cfg.s1, o.log, groups);
  const env: S1Env = {
    ws: o.ws,
    cfg: o.cfg,
    log: o.log,
    s1,
    ledger: new Ledger(o.ws, (msg, d) => o.log.warn(d, msg)),
    owner: makeOwner(),
    by,
    input,
    skipChecks: o.skipChecks ?? new Map(),
    stop: o.stop,
    ...(o.force ? { force: o.force } : {}),
    ...(o.lockLost ? { lockLost: o.lockLost } : {}),
    ...(o.onStage ? { onStage: o.onStage } : {}),
  };
  return { env, groups };
}

async function loadSignals(ws: WorkspacePaths, cfg: WorkspaceConfig) {
  const path = join(ws.inputs, 's1_signals.jsonl');
  const signals = await readWeightedSignals(path, cfg.s1.attention.weights);
  const input = { path: relative(ws.root, path), sha256: await fileSha256(path), rows: signals.length };
  return { groups: groupBySubject(signals), input };
}

/** A date's run, its stage 1–2 params planned: the inputs digest of its window now. */
export async function newDateRun(env: S1Env, groups: Parameters<typeof subjectsToScore>[0], plan: RunPlan, runId: string, retryOf?: string): Promise<DateRun> {
  env.s1.runIds.set(plan.date, runId);
  return {
    plan,
    params: await env.s1.paramsFor(plan.date, plan.as_of),
    windowSignals: await env.s1.windowCount(plan.date, plan.as_of),
    counted: null,
    countedParams: null,
    runId,
    ...(retryOf ? { retryOf } : {}),
    subjects: subjectsToScore(groups, plan, env.cfg.s1),
    // run-local's session log already carries its run id; a backfill's carries the backfill id.
    log: env.log.bindings().run_id === runId ? env.log : env.log.child({ run_id: runId }),
    stages: [],
    exit_code: EXIT.SUCCESS,
    failed: false,
    started: Date.now(),
    pointer: null,
  };
}

/**
 * One date of Season 1, end to end: the four stages on the worker runtime (each writes its
 * manifest), the guardrails, and the date's current pointer, moved only when everything passed.
 * The caller holds the run lock.
 */
export async function runS1(o: RunOptions): Promise<RunReport> {
  const t0 = Date.now();
  // Under the run lock: no other run can take the id between this check and the first manifest.
  assertRunIdFree(o.ws, o.runId);
  const { env, groups } = await prepareS1(o, `run ${o.runId}`);
  let r: DateRun;
  try {
    r = await newDateRun(env, groups, o.plan, o.runId, o.retryOf);
  } catch (err) {
    await env.s1.close();
    throw err;
  }
  r.started = t0;
  r.log.info(
    { event: 'run_start', date: o.plan.date, as_of: o.plan.as_of, provisional: o.plan.provisional, inputs: r.params.inputs, subjects: r.subjects.length, signals: env.input.rows },
    'run started',
  );
  try {
    for (const stage of STAGES) await runStageFor(env, [r], stage);
    if (!r.failed) await publishRun(env, r);
  } finally {
    await env.s1.close();
  }
  const report = reportOf(r);
  r.log.info({ event: 'run_end', date: o.plan.date, status: report.status, rc: report.exit_code, duration_ms: report.duration_ms, ...memory() }, 'run finished');
  return report;
}

export async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

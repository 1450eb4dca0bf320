import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join, relative } from 'node:path';
import type { Logger } from 'pino';
import { policyFor, type WorkspaceConfig } from '../../src/config/load.js';
import { toMetaspnError } from '../../src/guard/errors.js';
import { EXIT, mostSevere } from '../../src/guard/exit-codes.js';
import { openQueue } from '../../src/queue/open.js';
import { makeOwner } from '../../src/queue/owner.js';
import type { DeadLetter } from '../../src/queue/types.js';
import { drainStage, type StageDrain } from '../../src/runtime/stage.js';
import type { WorkerDefinition } from '../../src/runtime/worker-api.js';
import { writeManifest, type Manifest, type ManifestCheck } from '../../src/storage/manifest.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import { pointerPath, writePointer, type CurrentPointer } from '../../src/storage/pointers.js';
import { stageChecks } from './checks.js';
import { PIPELINE, S1Context, STORE_FILES, type StageName } from './context.js';
import { STAGES } from './ids.js';
import { groupBySubject } from './math.js';
import { stageTasks, subjectsToScore, type RunPlan } from './plan.js';
import { readSignals } from './signals.js';
import { ProjectRewardsWorker, PublishSeasonSummaryWorker, SettleSeasonWorker, UpdateAttentionScoresWorker } from './workers.js';

const WORKERS: Record<StageName, () => WorkerDefinition> = {
  update_attention_scores: () => new UpdateAttentionScoresWorker() as WorkerDefinition,
  project_rewards: () => new ProjectRewardsWorker() as WorkerDefinition,
  settle_season: () => new SettleSeasonWorker() as WorkerDefinition,
  publish_season_summary: () => new PublishSeasonSummaryWorker() as WorkerDefinition,
};

export interface RunOptions {
  ws: WorkspacePaths;
  cfg: WorkspaceConfig;
  plan: RunPlan;
  runId: string;
  retryOf?: string;
  log: Logger;
  stop: AbortSignal;
  force?: AbortSignal;
  /** True when the run lock was lost: then nothing is published. */
  lockLost?: () => boolean;
}

export interface StageReport {
  step: StageName;
  status: 'success' | 'failed';
  exit_code: number;
  manifest: string;
  duration_ms: number;
  tasks: Manifest['tasks'];
  outputs: Manifest['outputs'];
  checks: ManifestCheck[];
  error?: { class: string; message: string };
}

export interface RunReport {
  pipeline: 's1';
  run_id: string;
  date: string;
  as_of: string;
  params: RunPlan['params'];
  status: 'published' | 'failed';
  exit_code: number;
  stages: StageReport[];
  pointer: string | null;
  duration_ms: number;
}

/**
 * One date of Season 1, end to end: validate the inputs, run the four stages on the worker
 * runtime (each writes its manifest), and publish the date's current pointer only when every
 * stage and check passed. The caller holds the run lock.
 */
export async function runS1(o: RunOptions): Promise<RunReport> {
  const t0 = Date.now();
  const { ws, plan, log } = o;
  const inputPath = join(ws.inputs, 's1_signals.jsonl');
  const kinds = new Set(Object.keys(o.cfg.s1.attention.weights));
  // Every input line is checked before anything is written: a bad line exits 20 with nothing half-done.
  const signals = await readSignals(inputPath, kinds);
  const input = { path: relative(ws.root, inputPath), sha256: await fileSha256(inputPath), rows: signals.length };
  const groups = groupBySubject(signals);
  const subjects = subjectsToScore(groups, plan, o.cfg.s1);
  const s1 = new S1Context(ws, o.cfg.s1, log, groups, o.runId);
  const owner = makeOwner();
  const report: RunReport = {
    pipeline: 's1',
    run_id: o.runId,
    date: plan.date,
    as_of: plan.as_of,
    params: plan.params,
    status: 'failed',
    exit_code: EXIT.SUCCESS,
    stages: [],
    pointer: null,
    duration_ms: 0,
  };
  log.info({ event: 'run_start', date: plan.date, as_of: plan.as_of, subjects: subjects.length, signals: signals.length }, 'run started');
  try {
    let inputs: Manifest['inputs'] = [input];
    for (const stage of STAGES) {
      const r = await runStage(o, s1, owner, stage, subjects, inputs);
      report.stages.push(r);
      if (r.status !== 'success') {
        report.exit_code = r.exit_code;
        break;
      }
      inputs = [{ path: r.outputs[0]!.path, sha256: r.outputs[0]!.sha256, rows: r.outputs[0]!.rows_written + r.outputs[0]!.rows_present }];
    }
    if (report.stages.length === STAGES.length && report.stages.every((s) => s.status === 'success')) {
      if (o.lockLost?.()) {
        report.exit_code = EXIT.STATE_CORRUPT;
        log.error({ event: 'publish_refused' }, 'run lock was lost during the run: not publishing');
      } else {
        report.pointer = publish(ws, plan, o.runId, s1, log);
        report.status = 'published';
      }
    }
  } finally {
    await s1.close();
    report.duration_ms = Date.now() - t0;
    log.info({ event: 'run_end', date: plan.date, status: report.status, rc: report.exit_code, duration_ms: report.duration_ms, ...memory() }, 'run finished');
  }
  return report;
}

async function runStage(o: RunOptions, s1: S1Context, owner: ReturnType<typeof makeOwner>, stage: StageName, subjects: string[], inputs: Manifest['inputs']): Promise<StageReport> {
  const { ws, plan, log } = o;
  const started = new Date();
  log.info({ event: 'stage_start', stage, date: plan.date }, `${stage} started`);
  const worker = WORKERS[stage]();
  const init = { logger: log.child({ stage }), workspace: ws, env: { s1, config: o.cfg, run_id: o.runId } };
  await worker.init?.(init);
  const policy = policyFor(o.cfg, stage, worker.defaults ?? {});
  const queue = openQueue(ws, stage, policy, log);
  s1.written[stage] = { written: 0, present: 0 };
  let drain: StageDrain;
  try {
    drain = await drainStage({ queue, worker, policy, owner, init, tasks: stageTasks(stage, plan, subjects), by: `run ${o.runId}`, stop: o.stop, ...(o.force ? { force: o.force } : {}) });
  } finally {
    await worker.close?.();
    await queue.close();
  }
  let outputs: Manifest['outputs'] = [];
  let checks: ManifestCheck[] = [];
  let error: { class: string; message: string } | undefined;
  let exit_code: number = EXIT.SUCCESS;
  try {
    const out = await s1.digest(stage, plan.date, plan.params);
    // Another run drained by this one (after a forced lock break) can count more puts than rows.
    const written = Math.min(s1.written[stage].written, out.rows);
    outputs = [{ path: relative(ws.root, s1.stores[stage].path), rows_written: written, rows_present: out.rows - written, sha256: out.sha256 }];
    const failure = drainFailure(stage, drain, o.stop.aborted);
    checks = failure ? [] : await stageChecks(stage, s1, plan, subjects.length, out.rows);
    const failedCheck = checks.find((c) => c.status === 'fail');
    error = failure?.error ?? (failedCheck ? { class: 'CheckFailed', message: `check ${failedCheck.name} failed: observed ${JSON.stringify(failedCheck.observed)}, expected ${JSON.stringify(failedCheck.expected)}` } : undefined);
    exit_code = failure?.exit ?? (failedCheck ? EXIT.STATE_CORRUPT : EXIT.SUCCESS);
  } catch (err) {
    // The stage's report survives a failure to read its outputs back: the manifest says why.
    const e = toMetaspnError(err);
    error = { class: (err as Error)?.name ?? 'Error', message: e.message };
    exit_code = e.exitCode;
  }
  const finished = new Date();
  const manifest: Manifest = {
    schema_version: 1,
    pipeline: PIPELINE,
    run_id: o.runId,
    ...(o.retryOf ? { retry_of_run_id: o.retryOf } : {}),
    step: stage,
    date: plan.date,
    as_of: plan.as_of,
    params: plan.params,
    status: error ? 'failed' : 'success',
    started_at: started.toISOString(),
    finished_at: finished.toISOString(),
    duration_ms: finished.getTime() - started.getTime(),
    tasks: { total: drain.total, enqueued: drain.enqueued, rerun: drain.rerun, already_queued: drain.already_queued, completed: drain.completed, retried: drain.retried, dead: drain.dead.length },
    inputs,
    outputs,
    checks,
    ...(error ? { error } : {}),
    exit_code,
  };
  const path = writeManifest(ws, manifest);
  log.info({ event: 'stage_end', stage, date: plan.date, status: manifest.status, rc: exit_code, duration_ms: manifest.duration_ms, tasks: manifest.tasks, ...memory() }, `${stage} ${manifest.status}`);
  return { step: stage, status: manifest.status, exit_code, manifest: relative(ws.root, path), duration_ms: manifest.duration_ms, tasks: manifest.tasks, outputs, checks, ...(error ? { error } : {}) };
}

/** Why a stage's tasks did not all complete, and the exit code that says it. */
function drainFailure(stage: StageName, d: StageDrain, stopped: boolean): { error: { class: string; message: string }; exit: number } | null {
  if (d.dead.length > 0) {
    const exit = mostSevere(d.dead.map(deadExit));
    const first = d.dead[0]!;
    const reason = first.reason ? `${first.reason.class}: ${first.reason.message}` : 'unknown';
    return {
      error: {
        class: first.reason?.class ?? 'DeadLetter',
        message: `${d.dead.length} task(s) of ${stage} in the dead letters (first ${first.task.id}: ${reason}); fix the cause, then \`metaspn queue retry ${stage}\` and re-run`,
      },
      exit,
    };
  }
  if (d.paused) {
    return {
      error: { class: 'QueuePaused', message: `queue ${stage} is paused: ${d.unsettled} task(s) wait; \`metaspn queue resume ${stage}\` and re-run` },
      exit: EXIT.BUSINESS_SKIP,
    };
  }
  if (d.unsettled > 0) {
    return {
      error: { class: stopped ? 'Stopped' : 'Unsettled', message: `${d.unsettled} task(s) of ${stage} not finished${stopped ? ' (stop requested)' : ' (held by another worker)'}; re-run to continue` },
      exit: EXIT.BUSINESS_SKIP,
    };
  }
  return null;
}

/** A dead letter's exit code: 30 inconsistent state, 20 a contract error, 50 anything else. */
function deadExit(d: DeadLetter): number {
  if (d.reason?.code === 'STATE_CORRUPT') return EXIT.STATE_CORRUPT;
  if (d.reason?.kind === 'contract') return EXIT.DATA_INVALID;
  return EXIT.INTERNAL_ERROR;
}

function publish(ws: WorkspacePaths, plan: RunPlan, runId: string, s1: S1Context, log: Logger): string {
  const summaryId = s1.summaryIdFor(plan);
  const ptr: CurrentPointer = { pipeline: PIPELINE, date: plan.date, run_id: runId, summary_id: summaryId, published_at: new Date().toISOString(), params: plan.params };
  writePointer(ws, ptr);
  log.info({ event: 'published', run_id: runId, date: plan.date, summary_id: summaryId }, `published ${plan.date}`);
  return relative(ws.root, pointerPath(ws, PIPELINE, plan.date));
}

/** Memory now, for the stage log lines: operators see what a run of their size costs. */
function memory(): { rss_mb: number; heap_mb: number } {
  const m = process.memoryUsage();
  return { rss_mb: Math.round(m.rss / 2 ** 20), heap_mb: Math.round(m.heapUsed / 2 ** 20) };
}

async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export { STORE_FILES };

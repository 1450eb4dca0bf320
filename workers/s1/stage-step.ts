import { relative } from 'node:path';
import { policyFor } from '../../src/config/load.js';
import { isDiskFull, toMetaspnError } from '../../src/guard/errors.js';
import { EXIT } from '../../src/guard/exit-codes.js';
import { openQueue } from '../../src/queue/open.js';
import { collectIfGrown } from '../../src/runtime/memory.js';
import { drainStage, type StageDrain } from '../../src/runtime/stage.js';
import { drainFailure } from '../../src/pipeline/outcome.js';
import type { WorkerDefinition } from '../../src/runtime/worker-api.js';
import { writeManifest, type Manifest, type ManifestCheck } from '../../src/storage/manifest.js';
import { stageChecks } from './checks.js';
import { PIPELINE, type StageName } from './context.js';
import { STAGES, stageCounts, withCounted, type StageParams } from './ids.js';
import { guardrailChecks } from './publish.js';
import { stageTasks, taskGroup } from './plan.js';
import type { DateRun, S1Env, S1ManifestInput, StageReport } from './run-types.js';
import { ProjectRewardsWorker, PublishSeasonSummaryWorker, SettleSeasonWorker, UpdateAttentionScoresWorker } from './workers.js';

const WORKERS: Record<StageName, () => WorkerDefinition> = {
  update_attention_scores: () => new UpdateAttentionScoresWorker() as WorkerDefinition,
  project_rewards: () => new ProjectRewardsWorker() as WorkerDefinition,
  settle_season: () => new SettleSeasonWorker() as WorkerDefinition,
  publish_season_summary: () => new PublishSeasonSummaryWorker() as WorkerDefinition,
};

/**
 * One stage for one or more dates on the worker runtime: enqueue, drain together, then per date
 * in date order: commit its rows (when several dates ran at once), check, write its manifest.
 */
export async function runStageFor(env: S1Env, runs: readonly DateRun[], stage: StageName): Promise<void> {
  const live = runs.filter((r) => !r.failed);
  if (live.length === 0) return;
  const { s1 } = env;
  const started = new Date();
  // Stages 3 and 4 are planned once stage 2 finished: their params carry the counted digest.
  if (stageCounts(stage)) for (const r of live) await planCounted(env, r);
  const worker = WORKERS[stage]();
  const init = { logger: env.log.child({ stage }), workspace: env.ws, env: { s1, config: env.cfg } };
  await worker.init?.(init);
  const base = policyFor(env.cfg, stage, worker.defaults ?? {});
  // Date-level stages of several dates run side by side.
  const policy = { ...base, concurrency: Math.max(base.concurrency, live.length) };
  const deferring = live.length > 1;
  for (const r of live) {
    s1.resetCounts(stage, r.plan.date);
    if (deferring) s1.defer(stage, r.plan.date, paramsAt(r, stage));
    r.log.info({ event: 'stage_start', stage, date: r.plan.date }, `${stage} started`);
  }
  const queue = openQueue(env.ws, stage, policy, env.log);
  let drained: StageDrain[];
  const groups = live.map((r) => stageTasks(stage, r.plan.date, paramsAt(r, stage), r.subjects, taskGroup(r.plan.date)));
  try {
    // This run supersedes the stage's other open tasks of its dates (planned under inputs or
    // counted runs that no longer hold): cancelled, never run. Its own are kept.
    for (const [i, r] of live.entries()) {
      const keep = new Set(groups[i]!.map((t) => t.id));
      const cancelled = await queue.cancel({ group: taskGroup(r.plan.date), keep, by: env.by, reason: `superseded by run ${r.runId}` });
      if (cancelled.length) r.log.info({ event: 'tasks_cancelled', stage, date: r.plan.date, ids: cancelled.slice(0, 20), count: cancelled.length }, `${cancelled.length} superseded ${stage} task(s) cancelled`);
    }
    const res = await drainStage({
      queue,
      worker,
      policy,
      owner: env.owner,
      init,
      groups,
      by: env.by,
      stop: env.stop,
      ...(env.force ? { force: env.force } : {}),
    });
    drained = res.groups;
  } catch (err) {
    if (isDiskFull(err)) await recordDiskFull(env, live, stage, groups, started, err);
    throw err;
  } finally {
    await worker.close?.();
    await queue.close();
  }
  collectIfGrown();
  for (const [i, r] of live.entries()) {
    let commitError: unknown = null;
    try {
      await s1.commit(stage, r.plan.date);
    } catch (err) {
      commitError = err;
    }
    const report = await finishStage(env, r, stage, drained[i]!, started, commitError);
    r.stages.push(report);
    env.onStage?.(r.plan.date, report);
    if (report.status !== 'success') {
      r.failed = true;
      r.exit_code = report.exit_code;
    }
  }
}

/**
 * Cancels the open tasks of a date that `--resume` skips because a run already published it: an
 * interrupted later run can leave tasks of that date ready (a re-run takes completed tasks back
 * to ready before it drains them), and nothing would ever drain them. Returns how many.
 */
export async function cancelLeftovers(env: S1Env, date: string, publishedBy: string): Promise<number> {
  let n = 0;
  for (const stage of STAGES) {
    const queue = openQueue(env.ws, stage, policyFor(env.cfg, stage, WORKERS[stage]().defaults ?? {}), env.log);
    try {
      // A lease of the interrupted run's dead process goes back to ready first, then is cancelled too.
      await queue.reclaimExpired();
      const ids = await queue.cancel({ group: taskGroup(date), keep: new Set(), by: env.by, reason: `left by an interrupted run; ${date} is published by run ${publishedBy}` });
      if (ids.length) env.log.info({ event: 'tasks_cancelled', stage, date, ids: ids.slice(0, 20), count: ids.length }, `${ids.length} ${stage} task(s) left by an interrupted run cancelled`);
      n += ids.length;
    } finally {
      await queue.close();
    }
  }
  return n;
}

/**
 * What stage 3 counts for the run's date, read now that stage 2 finished: the counted digest goes
 * into the params of stages 3 and 4.
 */
export async function planCounted(env: S1Env, r: DateRun): Promise<void> {
  if (r.countedParams) return;
  r.counted = await env.s1.counted(r.plan.date, r.params);
  r.countedParams = withCounted(r.params, r.counted.digest);
}

/** The params of a stage of the run: stages 1–2 `r.params`, stages 3–4 with the counted digest. */
export function paramsAt(r: DateRun, stage: StageName): StageParams {
  if (!stageCounts(stage)) return r.params;
  if (!r.countedParams) throw new Error(`${stage} of ${r.plan.date} planned before its counted digest`);
  return r.countedParams;
}

/**
 * The disk filled up mid-stage: the runtime gave the tasks back and the command fails with the
 * cause. Each date's manifest says so when there is still room to write one; run history then
 * shows the run as failed rather than not at all.
 */
async function recordDiskFull(env: S1Env, live: readonly DateRun[], stage: StageName, groups: readonly (readonly unknown[])[], started: Date, err: unknown): Promise<void> {
  for (const [i, r] of live.entries()) {
    const total = groups[i]?.length ?? 0;
    const drain: StageDrain = { total, enqueued: 0, rerun: 0, already_queued: 0, completed: 0, retried: 0, dead: [], unsettled: total, paused: false };
    try {
      r.stages.push(await finishStage(env, r, stage, drain, started, err));
      r.failed = true;
    } catch {
      // No room for the manifest either: the error the command prints is the record.
    }
  }
}

/** Reads the stage's outputs back, checks them, writes its manifest. */
async function finishStage(env: S1Env, r: DateRun, stage: StageName, drain: StageDrain, started: Date, commitError: unknown): Promise<StageReport> {
  const { s1, ws } = env;
  const { plan } = r;
  const params = paramsAt(r, stage);
  let outputs: Manifest['outputs'] = [];
  let checks: ManifestCheck[] = [];
  let error: { class: string; message: string } | undefined;
  let exit_code: number = EXIT.SUCCESS;
  try {
    if (commitError) throw commitError;
    const out = await s1.digest(stage, plan.date, params);
    // Another run drained by this one (after a forced lock break) can count more puts than rows.
    const written = Math.min(s1.written(stage, plan.date).written, out.rows);
    outputs = [{ path: relative(ws.root, s1.stores[stage].path), rows_written: written, rows_present: out.rows - written, sha256: out.sha256 }];
    const failure = drainFailure(stage, drain, env.stop.aborted);
    if (failure) {
      error = failure.error;
      exit_code = failure.exit;
    } else {
      checks = await stageChecks(stage, s1, plan.date, params, r.subjects.length, out.rows);
      const failedCheck = checks.find((c) => c.status === 'fail');
      if (failedCheck) {
        error = { class: 'CheckFailed', message: `check ${failedCheck.name} failed: observed ${JSON.stringify(failedCheck.observed)}, expected ${JSON.stringify(failedCheck.expected)}` };
        exit_code = EXIT.STATE_CORRUPT;
      } else if (stage === 'publish_season_summary') {
        const g = await guardrailChecks(env, r);
        checks.push(...g.checks);
        if (g.tripped) {
          error = { class: 'AnomalyHalt', message: g.tripped };
          exit_code = EXIT.ANOMALY_HALT;
        }
      }
    }
  } catch (err) {
    // The stage's report survives a failure to read its outputs back: the manifest says why. A
    // stop that left tasks unfinished is what ended the stage (11), whatever the outputs read.
    const stopped = env.stop.aborted ? drainFailure(stage, drain, true) : null;
    const e = toMetaspnError(err);
    error = stopped?.error ?? { class: (err as Error)?.name ?? 'Error', message: e.message };
    exit_code = stopped?.exit ?? e.exitCode;
  }
  const finished = new Date();
  const manifest: Manifest & { provisional: boolean; inputs: S1ManifestInput[] } = {
    schema_version: 1,
    pipeline: PIPELINE,
    run_id: r.runId,
    ...(r.retryOf ? { retry_of_run_id: r.retryOf } : {}),
    step: stage,
    date: plan.date,
    as_of: plan.as_of,
    params,
    provisional: plan.provisional,
    status: error ? 'failed' : 'success',
    started_at: started.toISOString(),
    finished_at: finished.toISOString(),
    duration_ms: finished.getTime() - started.getTime(),
    tasks: { total: drain.total, enqueued: drain.enqueued, rerun: drain.rerun, already_queued: drain.already_queued, completed: drain.completed, retried: drain.retried, dead: drain.dead.length },
    inputs: inputsOf(env, r, stage),
    outputs,
    checks,
    ...(error ? { error } : {}),
    exit_code,
  };
  const path = writeManifest(ws, manifest);
  r.log.info({ event: 'stage_end', stage, date: plan.date, status: manifest.status, rc: exit_code, duration_ms: manifest.duration_ms, tasks: manifest.tasks, ...memory() }, `${stage} ${manifest.status}`);
  return { step: stage, status: manifest.status, exit_code, manifest: relative(ws.root, path), duration_ms: manifest.duration_ms, tasks: manifest.tasks, outputs, checks, ...(error ? { error } : {}) };
}

/**
 * What a stage read: stage 1 the signals file (its sha256, and the inputs digest of the part the
 * date uses); the others this run's outputs of the stages before them; stages 3 and 4 also the
 * projections of every earlier date's published run (its run id), which the counted digest covers.
 */
function inputsOf(env: S1Env, r: DateRun, stage: StageName): S1ManifestInput[] {
  if (stage === 'update_attention_scores') return [{ ...env.input, digest: r.params.inputs }];
  const mine: S1ManifestInput[] = r.stages.flatMap((s) => {
    const o = s.outputs[0];
    return o ? [{ path: o.path, sha256: o.sha256, rows: o.rows_written + o.rows_present, step: s.step, date: r.plan.date, run_id: r.runId }] : [];
  });
  if (!stageCounts(stage)) return mine.slice(-1);
  const path = relative(env.ws.root, env.s1.stores.project_rewards.path);
  const earlier = (r.counted?.upstream ?? []).map((u) => ({ path, sha256: u.sha256, rows: u.rows, step: 'project_rewards', date: u.date, run_id: u.run_id }));
  return [...(stage === 'settle_season' ? mine.slice(-1) : mine), ...earlier];
}


/** Memory now, for the stage log lines: operators see what a run of their size costs. */
export function memory(): { rss_mb: number; heap_mb: number } {
  const m = process.memoryUsage();
  return { rss_mb: Math.round(m.rss / 2 ** 20), heap_mb: Math.round(m.heapUsed / 2 ** 20) };
}

/**
 * Season 1 as the pipeline runner executes it. The runner plans the run, enqueues and supersedes
 * tasks, drains each stage's own tasks, writes the manifests, runs the checks and publishes; what
 * is Season 1's own is here: a stage's identity is its params (S1-SPEC: as-of, config hash,
 * inputs digest, and for stages 3–4 the counted digest), its task ids are the spec's
 * deterministic ids, its workers store their rows through the S1 context, and its checks are the
 * stage checks (30) and, before publishing, the built-in check and the guardrails (60).
 */
import type { WorkspaceConfig } from '../../src/config/load.js';
import { EXIT } from '../../src/guard/exit-codes.js';
import type { PipelineExecution, StepExecution, StepRun } from '../../src/pipeline/execution.js';
import type { WorkerDefinition } from '../../src/runtime/worker-api.js';
import { writeIncident } from '../../src/storage/incidents.js';
import type { ManifestCheck } from '../../src/storage/manifest.js';
import type { WorkspacePaths } from '../../src/storage/paths.js';
import { stageChecks } from './checks.js';
import { PIPELINE, type Counted, type S1Context, type StageName } from './context.js';
import { addDays } from './dates.js';
import { BUILTIN_CHECK_NAMES, CHECK_NAMES, evaluateGuardrails, windowHasSignals, type GuardrailCheck, type SummaryFacts } from './guardrails.js';
import { STAGES, stageCounts, withCounted, type CountedParams, type Params, type StageParams } from './ids.js';
import { stageTasks, subjectsToScore } from './plan.js';
import type { S1ManifestInput } from './run-types.js';
import { ProjectRewardsWorker, PublishSeasonSummaryWorker, SettleSeasonWorker, UpdateAttentionScoresWorker } from './workers.js';

const WORKERS: Record<StageName, () => WorkerDefinition> = {
  update_attention_scores: () => new UpdateAttentionScoresWorker() as WorkerDefinition,
  project_rewards: () => new ProjectRewardsWorker() as WorkerDefinition,
  settle_season: () => new SettleSeasonWorker() as WorkerDefinition,
  publish_season_summary: () => new PublishSeasonSummaryWorker() as WorkerDefinition,
};

/** What a run-local or a backfill shares: the workspace, the S1 context (stores, signals), the inputs file as read. */
export interface S1Env {
  ws: WorkspacePaths;
  cfg: WorkspaceConfig;
  s1: S1Context;
  /** The inputs file as the first stage read it: its path, sha256 and signal count. */
  input: { path: string; sha256: string; rows: number };
}

/** What one date's run of Season 1 keeps while it runs. */
export interface S1Run {
  /** The params of stages 1 and 2: as-of, config hash, the date's inputs digest. */
  params: Params;
  /** How many signals the date's window holds (the built-in check window_has_signals). */
  windowSignals: number;
  subjects: string[];
  /** What stage 3 counts, planned once stage 2 finished; null before. */
  counted: Counted | null;
  /** The params of stages 3 and 4 (with the counted digest); null until stage 2 finished. */
  countedParams: CountedParams | null;
}

/** Season 1's execution, plus the state of each run by run id (its params, for the run report). */
export interface S1Execution extends PipelineExecution {
  /** The params of a run's last stages (3–4 once planned, else 1–2); null for a run not begun. */
  paramsOf(runId: string): StageParams | null;
}

/** Options of {@link s1Execution}. */
export interface S1ExecutionOptions {
  /**
   * The execution runs one date only (run-local): once its stage 1 has drained, the signals are
   * released (the stages after it read the store, the date's digests are kept), so stages 2–4 do
   * not carry them. Default false (a backfill scores every date from the same signals).
   */
  single?: boolean;
}

export function s1Execution(env: S1Env, o: S1ExecutionOptions = {}): S1Execution {
  const runs = new Map<string, S1Run>();
  const finalParams = new Map<string, StageParams>();
  const runOf = async (run: StepRun): Promise<S1Run> => {
    let r = runs.get(run.run_id);
    if (r) return r;
    env.s1.runIds.set(run.partition, run.run_id);
    const plan = { date: run.partition, as_of: run.as_of };
    r = {
      params: await env.s1.paramsFor(plan.date, plan.as_of),
      windowSignals: await env.s1.windowCount(plan.date, plan.as_of),
      subjects: subjectsToScore(await env.s1.signals(), plan, env.cfg.s1),
      counted: null,
      countedParams: null,
    };
    // Two stages of one run never plan at once (a chain), so a second lookup finds this one.
    runs.set(run.run_id, r);
    run.log.info({ event: 'run_plan', inputs: r.params.inputs, subjects: r.subjects.length, signals: env.input.rows }, 'run planned');
    return r;
  };
  const paramsAt = async (run: StepRun, stage: StageName): Promise<StageParams> => {
    const r = await runOf(run);
    if (!stageCounts(stage)) return r.params;
    // Stages 3 and 4 are planned once stage 2 finished: their params carry the counted digest.
    if (!r.countedParams) {
      r.counted = await env.s1.counted(run.partition, r.params);
      r.countedParams = withCounted(r.params, r.counted.digest);
    }
    return r.countedParams;
  };
  return {
    name: PIPELINE,
    steps: STAGES.map((stage, i) => stageExecution(env, stage, i === 0 ? [] : [STAGES[i - 1]!], runOf, paramsAt, o.single === true)),
    checkNames: CHECK_NAMES,
    // Season 1's checks are its stages' (the last stage's include the guardrails).
    checks: () => Promise.resolve([]),
    publishes: async (run) => {
      const params = (await runOf(run)).countedParams;
      if (!params) throw new Error(`publishing ${run.partition} before its counted digest was planned`);
      return { summary_id: env.s1.summaryIdFor(run.partition, params), params };
    },
    // What settlement counted is stale once a pointer moved.
    published: () => env.s1.pointersMoved(),
    ended: (run) => {
      const r = runs.get(run.run_id);
      if (r) finalParams.set(run.run_id, r.countedParams ?? r.params);
      runs.delete(run.run_id);
    },
    blockedReason: (failed) => `not run: ${failed} failed, and settlement counts every earlier date; fix it and --resume`,
    paramsOf: (runId) => finalParams.get(runId) ?? null,
  };
}

function stageExecution(
  env: S1Env,
  stage: StageName,
  after: readonly StageName[],
  runOf: (run: StepRun) => Promise<S1Run>,
  paramsAt: (run: StepRun, stage: StageName) => Promise<StageParams>,
  single: boolean,
): StepExecution {
  const { s1, ws } = env;
  // On a database (rows committed with their tasks' acknowledgements): how many rows the run's
  // output set held before its tasks ran, and the order its rows take when the stage ends.
  const before = new Map<string, number>();
  const order = new Map<string, string[]>();
  return {
    name: stage,
    after,
    // Settlement counts every earlier date's publish: in a backfill it waits for the date before.
    previous: stage === 'settle_season',
    commitsInOrder: true,
    queue: stage,
    defaults: WORKERS[stage]().defaults ?? {},
    async identify(run) {
      const params = await paramsAt(run, stage);
      const r = await runOf(run);
      return { identity: s1.pkey(params), params, inputs: inputsOf(env, run, r, stage), manifest: { provisional: run.provisional } };
    },
    async tasks(run, id) {
      const r = await runOf(run);
      const tasks = stageTasks(stage, run.partition, id.params as StageParams, r.subjects).map((t) => ({ id: t.id, payload: t.payload }));
      if (s1.atomic) {
        before.set(run.run_id, (await s1.digest(stage, run.partition, id.params)).rows);
        // A stage-1 row's id is its task's: the rows take the order the tasks were planned in.
        if (stage === 'update_attention_scores')
          order.set(
            run.run_id,
            tasks.map((t) => t.id),
          );
      }
      return tasks;
    },
    // Season 1's workers store their rows through the S1 context: on files, put by the worker
    // (at-least-once and idempotent by id); on a database, committed with each task's acknowledgement.
    worker(run, id, { held, atomicEffects }) {
      if (atomicEffects !== s1.atomic) throw new Error(`${stage}: the queue ${atomicEffects ? 'commits' : 'does not commit'} task effects, the Season 1 stores expect otherwise`);
      s1.resetCounts(stage, run.partition);
      // Several dates at once (a backfill): their rows land in the store in date order, byte for
      // byte as date-by-date runs leave it (on a database, the seal in outputs orders them).
      if (held && !atomicEffects) s1.defer(stage, run.partition, id.params as StageParams);
      return { worker: WORKERS[stage](), init: { logger: run.log, workspace: ws, env: { s1, config: env.cfg } } };
    },
    async outputs(run, id) {
      // The one date's scoring is over: nothing after it reads a signal.
      if (single && stage === 'update_attention_scores') s1.releaseSignals();
      const store = s1.stores[stage];
      if (s1.atomic) {
        // Tasks committed their rows in any order, some on other hosts: the stage's rows take their
        // place now (in a backfill, in date order), as one machine appends them.
        s1.stageCommitted(stage, run.partition);
        await store.seal(run.partition, id.identity, order.get(run.run_id));
        order.delete(run.run_id);
        const out = await s1.digest(stage, run.partition, id.params);
        const written = Math.max(0, out.rows - (before.get(run.run_id) ?? 0));
        before.delete(run.run_id);
        return [{ path: store.location, rows_written: written, rows_present: out.rows - written, sha256: out.sha256 }];
      }
      await s1.commit(stage, run.partition);
      const out = await s1.digest(stage, run.partition, id.params);
      // Another run drained by this one (after a forced lock break) can count more puts than rows.
      const written = Math.min(s1.written(stage, run.partition).written, out.rows);
      return [{ path: store.location, rows_written: written, rows_present: out.rows - written, sha256: out.sha256 }];
    },
    async checks(run, id, outputs) {
      const r = await runOf(run);
      const o = outputs[0]!;
      const params = id.params as StageParams;
      const checks: ManifestCheck[] = await stageChecks(stage, s1, run.partition, params, r.subjects.length, o.rows_written + o.rows_present);
      const failed = checks.find((c) => c.status === 'fail');
      if (failed) {
        return {
          checks,
          failure: {
            error: { class: 'CheckFailed', message: `check ${failed.name} failed: observed ${JSON.stringify(failed.observed)}, expected ${JSON.stringify(failed.expected)}` },
            exit_code: EXIT.STATE_CORRUPT,
          },
        };
      }
      if (stage !== 'publish_season_summary') return { checks };
      const g = await guardrailChecks(env, run, r);
      checks.push(...g.checks);
      return g.tripped ? { checks, failure: { error: { class: 'AnomalyHalt', message: g.tripped }, exit_code: EXIT.ANOMALY_HALT } } : { checks };
    },
  };
}

/**
 * What a stage read: stage 1 the signals file (its sha256, and the inputs digest of the part the
 * date uses); the others this run's outputs of the stages before them; stages 3 and 4 also the
 * projections of every earlier date's published run (its run id), which the counted digest covers.
 */
function inputsOf(env: S1Env, run: StepRun, r: S1Run, stage: StageName): S1ManifestInput[] {
  if (stage === 'update_attention_scores') return [{ ...env.input, digest: r.params.inputs }];
  const mine: S1ManifestInput[] = run.steps.flatMap((s) => {
    const o = s.outputs[0];
    return o ? [{ path: o.path, sha256: o.sha256, rows: o.rows_written + o.rows_present, step: s.step, date: run.partition, run_id: run.run_id }] : [];
  });
  if (!stageCounts(stage)) return mine.slice(-1);
  const path = env.s1.stores.project_rewards.location;
  const earlier = (r.counted?.upstream ?? []).map((u) => ({ path, sha256: u.sha256, rows: u.rows, step: 'project_rewards', date: u.date, run_id: u.run_id }));
  return [...(stage === 'settle_season' ? mine.slice(-1) : mine), ...earlier];
}

function facts(row: Record<string, unknown> | undefined): SummaryFacts | null {
  if (!row) return null;
  return {
    total_score: row.total_score as number,
    subjects_scored: row.subjects_scored as number,
    pool_units: row.pool_units as number,
    allocated_units: row.allocated_units as number,
  };
}

/**
 * The checks before publishing: the built-in `window_has_signals`, then the guardrails of the
 * date's summary against the summaries of the dates published before it (newest first). A
 * tripped one writes an incident per check and returns why the run halts.
 */
async function guardrailChecks(env: S1Env, run: StepRun, r: S1Run): Promise<{ checks: GuardrailCheck[]; tripped: string | null }> {
  const { s1, ws, cfg } = env;
  const date = run.partition;
  const window = { first: addDays(date, 1 - cfg.s1.attention.window_days), last: date, as_of: run.as_of };
  const checks: GuardrailCheck[] = [windowHasSignals(r.windowSignals, window, run.skipChecks)];
  const today = r.countedParams ? facts((await s1.rows('publish_season_summary', date, r.countedParams))[0]) : null;
  if (today) {
    const depth = Math.max(cfg.guardrails.total_score_ratio.window, cfg.guardrails.subjects_scored_drop.window);
    const history: SummaryFacts[] = [];
    const pointers = s1.pipelineStores.pointers;
    for (const d of (await pointers.partitions(PIPELINE)).filter((x) => x < date).reverse()) {
      if (history.length >= depth) break;
      const ptr = await pointers.read(PIPELINE, d);
      if (!ptr) continue;
      const row = (await s1.rows('publish_season_summary', d, ptr.params)).find((x) => x.id === ptr.summary_id);
      const f = facts(row);
      if (f) history.push(f);
    }
    checks.push(...evaluateGuardrails(cfg.guardrails, today, history, run.skipChecks));
  }
  const failed = checks.filter((c) => c.status === 'fail');
  for (const c of failed) {
    const incident = writeIncident(ws, 'anomaly_halt', `${date}-${c.name}`, {
      check: c.name,
      observed: c.observed,
      expected: c.expected,
      threshold: c.threshold,
      run_id: run.run_id,
      date,
      note: "nothing was published; the run's artifacts and manifests are kept. If it is a known false alarm: --skip-check NAME --reason TEXT",
    });
    run.log.error({ event: 'anomaly_halt', check: c.name, observed: c.observed, threshold: c.threshold, incident }, `check ${c.name} tripped`);
  }
  for (const c of checks.filter((x) => x.status === 'skipped')) run.log.warn({ event: 'guardrail_skipped', check: c.name, note: c.note }, `check ${c.name} skipped`);
  const kind = (name: string): string => ((BUILTIN_CHECK_NAMES as readonly string[]).includes(name) ? 'check' : 'guardrail');
  const tripped = failed.length
    ? `${failed.map((c) => `${kind(c.name)} ${c.name}`).join(', ')} tripped (${failed.map((c) => JSON.stringify(c.observed)).join('; ')}); nothing published, see reports/incidents/`
    : null;
  return { checks, tripped };
}

import { join } from 'node:path';
import { EXIT, mostSevere } from '../../src/guard/exit-codes.js';
import { MetaspnError, UsageError } from '../../src/guard/errors.js';
import { runExecutionBackfill, summaryDue, type PartitionResult, type ResumeDecision } from '../../src/pipeline/backfill.js';
import { memory } from '../../src/runtime/memory.js';
import { writeAtomicSync } from '../../src/storage/atomic.js';
import { PIPELINE } from './context.js';
import { checkBackfillSpan, defaultAsOf, parseDate, seasonDates } from './dates.js';
import { s1Execution, type S1Env } from './execution.js';
import { STAGES } from './ids.js';
import { prepareS1, s1Deps, type PipelineOptions } from './pipeline.js';
import { planRun, type RunPlan } from './plan.js';
import { publishedDatesIn, type PublishedDate } from './stale.js';

export interface BackfillOptions extends PipelineOptions {
  backfillId: string;
  start: string;
  end: string;
  /** Dates run at once (settlement and publishing still go in date order). Default 1. */
  maxParallel: number;
  /**
   * Skip dates already published with the same params whose outputs still match the store and
   * whose inputs and counted runs did not change since (not stale); from the first date that runs
   * again, every later date of the range runs too (its settlement may count it anew).
   */
  resume: boolean;
  /** After each date settles (published, failed, skipped or blocked). */
  onDate?: (d: DateResult, done: number, total: number) => void;
}

export type DateStatus = 'published' | 'failed' | 'skipped' | 'blocked';

export type DateResult = PartitionResult;

export interface BackfillReport {
  backfill_id: string;
  pipeline: 's1';
  start: string;
  end: string;
  max_parallel: number;
  resume: boolean;
  started_at: string;
  updated_at: string;
  finished_at: string | null;
  exit_code: number;
  dates: Record<string, DateResult>;
  summary: string;
}

/**
 * The dates of a backfill, checked before any lock is taken: inside the season, and over (a range
 * that reaches a date whose default as-of is later than the clock is refused, exit 10).
 * @param nowMs the clock, epoch milliseconds; default `Date.now()`.
 */
export function backfillPlans(o: Pick<BackfillOptions, 'cfg' | 'start' | 'end'>, nowMs: number = Date.now()): RunPlan[] {
  const start = parseDate(o.start, '--start');
  const end = parseDate(o.end, '--end');
  if (start > end) throw new UsageError(`--start ${start} is after --end ${end}`);
  const { season } = o.cfg.s1;
  if (start < season.start || end > season.end) {
    throw new MetaspnError('BUSINESS_REJECT', `--start ${start} --end ${end} reaches outside season ${season.id} (${season.start} to ${season.end}); nothing was run`, {
      hint: 'narrow the range to the season',
    });
  }
  checkBackfillSpan(start, end);
  const open = seasonDates(start, end).find((d) => Date.parse(defaultAsOf(d)) > nowMs);
  if (open !== undefined) {
    throw new MetaspnError('BUSINESS_REJECT', `--start ${start} --end ${end} reaches ${open}, which is not over yet (the clock says ${new Date(nowMs).toISOString()}); nothing was run`, {
      hint: `end the range before ${open}; a provisional run of an open day is \`metaspn s1 run-local --date D --as-of <an instant not later than now>\``,
    });
  }
  return seasonDates(start, end).map((d) => planRun(o.cfg.s1, d, undefined, nowMs));
}

/**
 * Runs run-local's steps for every date of a range under one lock, on the pipeline runner's
 * backfill: up to `maxParallel` dates at once, their rows held back and committed in date order
 * (the store ends byte-identical to date-by-date runs); settlement and publishing in date order,
 * since settlement reads the earlier dates' published pointers. A date that fails blocks the
 * later ones: their settlement would miss it. `manifests/backfills/<id>/summary.json` is
 * rewritten as dates finish.
 */
export async function backfill(o: BackfillOptions): Promise<BackfillReport> {
  const plans = backfillPlans(o);
  const d = s1Deps(o);
  let env: S1Env;
  try {
    env = await prepareS1(o, d.stores);
  } catch (err) {
    await d.stores.close();
    throw err;
  }
  const exec = s1Execution(env);
  const report: BackfillReport = {
    backfill_id: o.backfillId,
    pipeline: PIPELINE,
    start: plans[0]!.date,
    end: plans[plans.length - 1]!.date,
    max_parallel: o.maxParallel,
    resume: o.resume,
    started_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
    finished_at: null,
    exit_code: EXIT.SUCCESS,
    dates: {},
    summary: join(o.ws.manifests, 'backfills', o.backfillId, 'summary.json'),
  };
  o.log.info({ event: 'backfill_start', start: report.start, end: report.end, dates: plans.length, max_parallel: o.maxParallel, resume: o.resume }, 'backfill started');
  writeSummary(report);
  try {
    await runExecutionBackfill(
      exec,
      {
        backfillId: o.backfillId,
        plans: plans.map((p) => ({ partition: p.date, as_of: p.as_of, provisional: p.provisional })),
        maxParallel: o.maxParallel,
        resume: o.resume,
        by: `backfill ${o.backfillId}`,
        stop: o.stop,
        ...(o.force ? { force: o.force } : {}),
        ...(o.lockLost ? { lockLost: o.lockLost } : {}),
        ...(o.skipChecks ? { skipChecks: o.skipChecks } : {}),
        onPartition: (r, done, total) => {
          report.dates[r.date] = r;
          report.updated_at = new Date().toISOString();
          report.exit_code = mostSevere([report.exit_code, r.exit_code]);
          if (summaryDue(r)) writeSummary(report);
          o.onDate?.(r, done, total);
        },
      },
      d,
      (ps) =>
        resumeDecisions(
          env,
          ps.map((p) => plans.find((x) => x.date === p.partition)!),
        ),
    );
  } finally {
    await env.s1.close();
    await d.stores.close();
    report.finished_at = new Date().toISOString();
    writeSummary(report);
    o.log.info({ event: 'backfill_end', rc: report.exit_code, ...memory() }, 'backfill finished');
  }
  return report;
}

/**
 * `--resume`: a date is skipped when a run published it with the same params (as-of, config hash,
 * inputs and counted digests: not stale), every step of that run succeeded and its recorded
 * outputs still match the store. From the first date that runs again, every later one runs too
 * (the runner's backfill: its settlement may count it anew).
 */
async function resumeDecisions(env: S1Env, plans: readonly RunPlan[]): Promise<Map<string, ResumeDecision>> {
  const states = await publishedDatesIn(env.s1.pipelineStores, env.cfg.s1, await env.s1.sorted(), new Set(plans.map((p) => p.date)));
  const byDate = new Map(states.map((x) => [x.date, x]));
  const out = new Map<string, ResumeDecision>();
  for (const plan of plans) {
    const state = byDate.get(plan.date);
    const skip = await doneRun(env, plan, state);
    out.set(plan.date, { skip, reason: 'already published with the same params and inputs; outputs match the store', ...(state?.state === 'stale' ? { stale: state.reasons.join('; ') } : {}) });
  }
  return out;
}

/**
 * The run that already published this date with the same params (as-of, config hash, inputs and
 * counted digests: not stale), when every step of it succeeded and its recorded outputs still
 * match the store; else null (the date runs again).
 */
async function doneRun(env: S1Env, plan: RunPlan, state: PublishedDate | undefined): Promise<string | null> {
  if (!state || state.state !== 'fine') return null;
  const stores = env.s1.pipelineStores;
  const ptr = await stores.pointers.read(PIPELINE, plan.date);
  if (!ptr || ptr.run_id !== state.run_id || ptr.params.as_of !== plan.as_of || ptr.params.config_hash !== plan.config_hash) return null;
  for (const stage of STAGES) {
    const m = (await stores.manifests.list(PIPELINE, stage, plan.date)).find((x) => x.run_id === ptr.run_id);
    if (!m || m.status !== 'success') return null;
    const now = await env.s1.digest(stage, plan.date, m.params);
    if (now.sha256 !== m.outputs[0]?.sha256) return null;
  }
  return ptr.run_id;
}

function writeSummary(r: BackfillReport): void {
  const { summary, ...body } = r;
  writeAtomicSync(summary, `${JSON.stringify(body, null, 2)}\n`);
}

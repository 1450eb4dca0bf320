import { join } from 'node:path';
import { EXIT, mostSevere } from '../../src/guard/exit-codes.js';
import { MetaspnError, UsageError } from '../../src/guard/errors.js';
import { writeAtomicSync } from '../../src/storage/atomic.js';
import { manifestsOf } from '../../src/storage/manifest.js';
import { readPointer } from '../../src/storage/pointers.js';
import { PIPELINE } from './context.js';
import { defaultAsOf, parseDate, seasonDates } from './dates.js';
import { STAGES } from './ids.js';
import { newDateRun, prepareS1, type PipelineOptions } from './pipeline.js';
import { planRun, type RunPlan } from './plan.js';
import { publishRun } from './publish.js';
import { reportOf, type DateRun, type S1Env } from './run-types.js';
import { publishedDates, type PublishedDate } from './stale.js';
import { cancelLeftovers, memory, runStageFor } from './stage-step.js';

export interface BackfillOptions extends PipelineOptions {
  backfillId: string;
  start: string;
  end: string;
  /** Dates whose scoring and projection run at once. Default 1. */
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

export interface DateResult {
  date: string;
  status: DateStatus;
  run_id: string | null;
  exit_code: number;
  duration_ms: number;
  reason?: string;
  /** With --resume: the date was published, but stale (why); it ran again. */
  stale?: string;
}

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
  const open = seasonDates(start, end).find((d) => Date.parse(defaultAsOf(d)) > nowMs);
  if (open !== undefined) {
    throw new MetaspnError('BUSINESS_REJECT', `--start ${start} --end ${end} reaches ${open}, which is not over yet (the clock says ${new Date(nowMs).toISOString()}); nothing was run`, {
      hint: `end the range before ${open}; a provisional run of an open day is \`metaspn s1 run-local --date D --as-of <an instant not later than now>\``,
    });
  }
  return seasonDates(start, end).map((d) => planRun(o.cfg.s1, d, undefined, nowMs));
}

/**
 * Runs run-local's steps for every date of a range under one lock: scoring and projection of up
 * to `maxParallel` dates at once (their rows held back and committed in date order, so the store
 * ends byte-identical to date-by-date runs), settlement and publishing in date order, since they
 * read the earlier dates' published pointers. A date that fails blocks the later ones: their
 * settlement would miss it. `manifests/backfills/<id>/summary.json` is rewritten as dates finish.
 */
export async function backfill(o: BackfillOptions): Promise<BackfillReport> {
  const plans = backfillPlans(o);
  const { env, groups } = await prepareS1(o, `backfill ${o.backfillId}`);
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
  let done = 0;
  const settle = (d: DateResult): void => {
    report.dates[d.date] = d;
    report.updated_at = new Date().toISOString();
    report.exit_code = mostSevere(Object.values(report.dates).map((x) => x.exit_code));
    writeSummary(report);
    o.onDate?.(d, ++done, plans.length);
  };
  o.log.info({ event: 'backfill_start', start: report.start, end: report.end, dates: plans.length, max_parallel: o.maxParallel, resume: o.resume }, 'backfill started');
  writeSummary(report);
  let blockedBy: string | null = null;
  try {
    const todo: RunPlan[] = [];
    const staleOf = new Map<string, string>();
    if (o.resume) {
      const states = publishedDates(o.ws, o.cfg.s1, await env.s1.sorted(), new Set(plans.map((p) => p.date)));
      const byDate = new Map(states.map((x) => [x.date, x]));
      // From the first date that runs again, every later one runs too: its settlement may count it anew.
      let rerunning = false;
      for (const plan of plans) {
        const state = byDate.get(plan.date);
        if (state?.state === 'stale') {
          staleOf.set(plan.date, state.reasons.join('; '));
          o.log.warn({ event: 'date_stale', date: plan.date, run_id: state.run_id, reasons: state.reasons }, `${plan.date} is stale: it runs again`);
        }
        const ptr = rerunning ? null : await doneRun(env, plan, state);
        if (ptr) {
          await cancelLeftovers(env, plan.date, ptr);
          settle({ date: plan.date, status: 'skipped', run_id: ptr, exit_code: EXIT.SUCCESS, duration_ms: 0, reason: 'already published with the same params and inputs; outputs match the store' });
        } else {
          rerunning = true;
          todo.push(plan);
        }
      }
      // What was read to decide is stale once a date publishes again.
      env.s1.forgetCounted();
    } else todo.push(...plans);
    for (let i = 0; i < todo.length; i += o.maxParallel) {
      const window = todo.slice(i, i + o.maxParallel);
      if (blockedBy !== null || env.stop.aborted) {
        for (const p of window) settle(blocked(p, blockedBy, env.stop.aborted));
        continue;
      }
      const runs = await Promise.all(window.map((plan) => newDateRun(env, groups, plan, `${o.backfillId}.${plan.date}`)));
      for (const r of runs) r.log.info({ event: 'run_start', date: r.plan.date, as_of: r.plan.as_of, inputs: r.params.inputs, subjects: r.subjects.length }, 'run started');
      await runStageFor(env, runs, 'update_attention_scores');
      await runStageFor(env, runs, 'project_rewards');
      for (const r of runs) {
        if (blockedBy !== null || env.stop.aborted) {
          settle(blocked(r.plan, blockedBy, env.stop.aborted));
          continue;
        }
        for (const stage of STAGES.slice(2)) await runStageFor(env, [r], stage);
        if (!r.failed) await publishRun(env, r);
        const stale = staleOf.get(r.plan.date);
        settle({ ...resultOf(r), ...(stale ? { stale } : {}) });
        if (r.failed || !r.pointer) blockedBy = r.plan.date;
      }
    }
  } finally {
    await env.s1.close();
    report.finished_at = new Date().toISOString();
    writeSummary(report);
    o.log.info({ event: 'backfill_end', rc: report.exit_code, ...memory() }, 'backfill finished');
  }
  return report;
}

function resultOf(r: DateRun): DateResult {
  const rep = reportOf(r);
  const failed = r.stages.find((s) => s.status === 'failed');
  return {
    date: r.plan.date,
    status: rep.status === 'published' ? 'published' : 'failed',
    run_id: r.runId,
    exit_code: rep.exit_code,
    duration_ms: rep.duration_ms,
    ...(failed?.error ? { reason: `${failed.step}: ${failed.error.message}` } : {}),
  };
}

function blocked(plan: RunPlan, by: string | null, stopped: boolean): DateResult {
  const reason = stopped ? 'stop requested before this date ran' : `not run: ${by} failed, and settlement counts every earlier date; fix it and --resume`;
  return { date: plan.date, status: 'blocked', run_id: null, exit_code: EXIT.BUSINESS_SKIP, duration_ms: 0, reason };
}

/**
 * The run that already published this date with the same params (as-of, config hash, inputs and
 * counted digests: not stale), when every step of it succeeded and its recorded outputs still
 * match the store; else null (the date runs again).
 */
async function doneRun(env: S1Env, plan: RunPlan, state: PublishedDate | undefined): Promise<string | null> {
  if (!state || state.state !== 'fine') return null;
  const ptr = readPointer(env.ws, PIPELINE, plan.date);
  if (!ptr || ptr.run_id !== state.run_id || ptr.params.as_of !== plan.as_of || ptr.params.config_hash !== plan.config_hash) return null;
  for (const stage of STAGES) {
    const m = manifestsOf(env.ws, stage, plan.date).find((x) => x.run_id === ptr.run_id);
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

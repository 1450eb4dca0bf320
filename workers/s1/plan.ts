import { MetaspnError } from '../../src/guard/errors.js';
import type { NewTask } from '../../src/queue/types.js';
import type { S1Config } from './config.js';
import { configHash } from './config.js';
import { asOfInstantMs, defaultAsOf, parseDate, resolveAsOf } from './dates.js';
import { DATE_LEVEL_SUBJECT, deterministicId, idMaker, paramsOf, type StageParams } from './ids.js';
import type { SubjectGroups } from './signal-table.js';
import { windowBounds } from './digests.js';
import type { StageName } from './context.js';

/** What one run of one date works with: checked before any lock is taken or anything written. */
export interface RunPlan {
  date: string;
  /** The canonical as-of (`toISOString()` form). */
  as_of: string;
  /** The date was not over when planned (its default as-of is later than the clock): a provisional run. */
  provisional: boolean;
  config_hash: string;
}

/**
 * Parses and checks the date and as-of against the season and the clock.
 * - A date outside the season: BUSINESS_REJECT (exit 10).
 * - A date not over yet (its default as-of, the next midnight UTC, is later than `nowMs`) without
 *   `--as-of`: BUSINESS_REJECT; with an `--as-of` not later than the clock it is a provisional run.
 * - An `--as-of` later than the clock: BUSINESS_REJECT (data from the future cannot be there yet).
 * @param nowMs the clock, epoch milliseconds; default `Date.now()`.
 * @throws UsageError (64) for a malformed date or as-of, or an as-of later than the date's default.
 */
export function planRun(cfg: S1Config, dateText: string, asOfText: string | undefined, nowMs: number = Date.now()): RunPlan {
  const date = parseDate(dateText);
  if (date < cfg.season.start || date > cfg.season.end) {
    throw new MetaspnError('BUSINESS_REJECT', `--date ${date} is outside season ${cfg.season.id} (${cfg.season.start} to ${cfg.season.end}); nothing to do`, {
      hint: 'pick a date inside the season, or change season.start/end in metaspn.config.json',
    });
  }
  const fallback = defaultAsOf(date);
  const now = new Date(nowMs).toISOString();
  const asOfMs = asOfText === undefined ? null : asOfInstantMs(asOfText);
  if (asOfMs !== null && asOfMs > nowMs) {
    throw new MetaspnError('BUSINESS_REJECT', `--as-of ${new Date(asOfMs).toISOString()} is later than the clock (${now}); nothing was run`, {
      hint: 'data after now cannot be there yet: give an --as-of not later than now',
    });
  }
  if (asOfText === undefined && Date.parse(fallback) > nowMs) {
    throw new MetaspnError('BUSINESS_REJECT', `--date ${date} is not over yet: it ends at ${fallback}, the clock says ${now}; nothing was run`, {
      hint: `run it after ${fallback}, or give --as-of an instant not later than now for a provisional run`,
    });
  }
  const as_of = resolveAsOf(date, asOfText);
  return { date, as_of, provisional: Date.parse(fallback) > nowMs, config_hash: configHash(cfg) };
}

/** Subjects with at least one signal counted on the date (window and as-of applied), ascending. */
export function subjectsToScore(groups: SubjectGroups, plan: Pick<RunPlan, 'date' | 'as_of'>, cfg: S1Config): string[] {
  const { from_ms, to_ms } = windowBounds(plan.date, Date.parse(plan.as_of), cfg.attention.window_days);
  return groups.subjectsWithin(from_ms, to_ms);
}

/**
 * What a task of a stage carries: the date and every params key of the stage (as_of, config_hash,
 * inputs, and counted for stages 3–4), so the worker can check that its inputs still match the
 * identity it was enqueued under; stage 1 tasks also their subject.
 */
export type TaskPayload = { date: string } & StageParams & { subject_ref?: string };

/**
 * The tasks of a stage for one date, with deterministic ids: re-running a date whose inputs did
 * not change finds them instead of adding more.
 * @param params the stage's params ({@link paramsOf}: stages 3–4 need `counted`).
 * @param group set on every task (`s1/<date>`) when given.
 */
export function stageTasks(stage: StageName, date: string, params: StageParams, subjects: readonly string[], group?: string): NewTask[] {
  const p = paramsOf(stage, params);
  const base = { date, ...p };
  const extra = group === undefined ? {} : { group };
  if (stage === 'update_attention_scores') {
    const idOf = idMaker(stage, date, p);
    // Stage 1's params are `{ as_of, config_hash, inputs }` (makeParams): each task's payload is
    // written out with the keys of `{ ...base, subject_ref }` in their order, without a spread a task.
    const { as_of, config_hash, inputs } = p;
    return subjects.map((subject_ref) => {
      const payload = { date, as_of, config_hash, inputs, subject_ref };
      return group === undefined ? { id: idOf(subject_ref), payload } : { id: idOf(subject_ref), payload, group };
    });
  }
  return [{ id: deterministicId(stage, date, DATE_LEVEL_SUBJECT, p), payload: base, ...extra }];
}

/** The task group of a date's Season 1 tasks: `s1/<date>`. */
export function taskGroup(date: string): string {
  return `s1/${date}`;
}

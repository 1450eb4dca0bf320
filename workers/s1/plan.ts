import { MetaspnError } from '../../src/guard/errors.js';
import type { NewTask } from '../../src/queue/types.js';
import type { S1Config } from './config.js';
import { configHash } from './config.js';
import { DAY_MS, dayNumber, parseDate, resolveAsOf } from './dates.js';
import { DATE_LEVEL_SUBJECT, deterministicId, makeParams, type Params } from './ids.js';
import type { Signal } from './signals.js';
import type { StageName } from './context.js';

/** What one run of one date works with: checked before any lock is taken or anything written. */
export interface RunPlan {
  date: string;
  as_of: string;
  params: Params;
}

/** Parses and checks the date and as-of; a date outside the season is a business reject (exit 10). */
export function planRun(cfg: S1Config, dateText: string, asOfText: string | undefined): RunPlan {
  const date = parseDate(dateText);
  const as_of = resolveAsOf(date, asOfText);
  if (date < cfg.season.start || date > cfg.season.end) {
    throw new MetaspnError('BUSINESS_REJECT', `--date ${date} is outside season ${cfg.season.id} (${cfg.season.start} to ${cfg.season.end}); nothing to do`, {
      hint: 'pick a date inside the season, or change season.start/end in metaspn.config.json',
    });
  }
  return { date, as_of, params: makeParams(as_of, configHash(cfg)) };
}

/** Subjects with at least one signal counted on the date: window and as-of applied. */
export function subjectsToScore(groups: ReadonlyMap<string, readonly Signal[]>, plan: RunPlan, cfg: S1Config): string[] {
  const last = dayNumber(plan.date)!;
  const first = last - cfg.attention.window_days + 1;
  const asOf = Date.parse(plan.as_of);
  const out: string[] = [];
  for (const [subject, signals] of groups) {
    if (signals.some((s) => s.ts_ms < asOf && Math.floor(s.ts_ms / DAY_MS) >= first && Math.floor(s.ts_ms / DAY_MS) <= last)) out.push(subject);
  }
  return out;
}

/** The tasks of a stage, with deterministic ids: re-running a date finds them instead of adding more. */
export function stageTasks(stage: StageName, plan: RunPlan, subjects: readonly string[]): NewTask[] {
  const base = { date: plan.date, as_of: plan.as_of, config_hash: plan.params.config_hash };
  if (stage === 'update_attention_scores') {
    return subjects.map((subject_ref) => ({ id: deterministicId(stage, plan.date, subject_ref, plan.params), payload: { ...base, subject_ref } }));
  }
  return [{ id: deterministicId(stage, plan.date, DATE_LEVEL_SUBJECT, plan.params), payload: base }];
}

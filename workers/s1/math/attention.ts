import type { S1Config } from '../config.js';
import { LIMITS } from '../../../src/config/limits.js';
import { DAY_MS, dayNumber } from '../dates.js';
import type { Signal } from '../signals.js';
import type { SignalColumns } from '../signal-table.js';
import { compareText, round6 } from './order.js';

/** The `attention` section of the config. */
export type AttentionConfig = S1Config['attention'];

/** A subject's attention for one date. */
export type SubjectScore = { subject_ref: string; score: number; signal_count: number };

/** Ascending (`ts_ms`, `signal_id`): the order the spec sums signals in. */
export function compareSignals(a: Signal, b: Signal): number {
  return a.ts_ms - b.ts_ms || compareText(a.signal_id, b.signal_id);
}

/**
 * Groups signals by `subject_ref`. The map's keys come in ascending subject_ref order (plain `<`);
 * each group keeps the input order.
 */
export function groupBySubject(signals: readonly Signal[]): Map<string, Signal[]> {
  const groups = new Map<string, Signal[]>();
  for (const s of signals) {
    const group = groups.get(s.subject_ref);
    if (group === undefined) groups.set(s.subject_ref, [s]);
    else group.push(s);
  }
  return new Map([...groups.entries()].sort((a, b) => compareText(a[0], b[0])));
}

/**
 * One subject's attention score on `date`, or `null` when none of its signals counts.
 *
 * A signal counts when its UTC day is in `[date - window_days + 1, date]` and `ts_ms < asOfMs`.
 * score = round6(sum, in ascending (ts, signal_id) order, of
 * `weights[kind] * value * 0.5 ** (age_days / half_life_days)`), age_days = date - signal day.
 * A subject whose counted signals all weigh 0 gets score 0, not `null`.
 * @throws RangeError when a kind has no weight (the reader should have rejected it) or the sum
 *   overflows to a non-finite number.
 */
export function attentionForSubject(signals: readonly Signal[], date: string, asOfMs: number, attention: AttentionConfig): { score: number; signal_count: number } | null {
  const dateDay = dayNumber(date);
  if (dateDay === null) throw new RangeError(`not a YYYY-MM-DD calendar date: "${date}"`);
  const firstDay = dateDay - attention.window_days + 1;
  const counted = signals.filter((s) => {
    const day = Math.floor(s.ts_ms / DAY_MS);
    return day >= firstDay && day <= dateDay && s.ts_ms < asOfMs;
  });
  if (counted.length === 0) return null;
  counted.sort(compareSignals);
  let sum = 0;
  for (const s of counted) {
    const weight = attention.weights[s.kind];
    if (weight === undefined) throw new RangeError(`signal ${s.signal_id}: kind "${s.kind}" has no weight`);
    const age = dateDay - Math.floor(s.ts_ms / DAY_MS);
    sum += weight * s.value * 0.5 ** (age / attention.half_life_days);
  }
  const score = round6(sum);
  if (!Number.isFinite(score)) throw new RangeError(`attention score of ${counted[0]?.subject_ref} overflows`);
  return { score, signal_count: counted.length };
}

/** Reused by {@link weightsOfKinds} (the scoring is synchronous: one call at a time). */
const weightOf: (number | undefined)[] = [];

/**
 * `weights[kinds[k]]` for each kind index `k` (undefined where a kind has none), looked up once a
 * subject: a keyed lookup by the kind's text a signal was a sixth of stage 1's scoring.
 */
function weightsOfKinds(kinds: readonly string[], weights: Readonly<Record<string, number>>): readonly (number | undefined)[] {
  weightOf.length = kinds.length;
  for (let k = 0; k < kinds.length; k++) weightOf[k] = weights[kinds[k]!];
  return weightOf;
}

/** The longest window {@link decayByAge} makes a table for (LIMITS `attention.window_days`). */
const MAX_WINDOW_DAYS = LIMITS['attention.window_days'].max;
let lastHalfLife = Number.NaN;
let lastDecay = new Float64Array(0);

/**
 * `0.5 ** (age / halfLifeDays)` for each age in days of the window, `0 <= age < windowDays`: the
 * same expression, so the same numbers, computed once per config instead of a power a signal.
 * Empty for a window that is not a whole number of days up to the config's limit (the caller
 * computes what the table does not hold).
 */
function decayByAge(halfLifeDays: number, windowDays: number): Float64Array {
  const n = Number.isInteger(windowDays) && windowDays > 0 && windowDays <= MAX_WINDOW_DAYS ? windowDays : 0;
  if (halfLifeDays !== lastHalfLife || lastDecay.length !== n) {
    const decay = new Float64Array(n);
    for (let age = 0; age < n; age++) decay[age] = 0.5 ** (age / halfLifeDays);
    lastDecay = decay;
    lastHalfLife = halfLifeDays;
  }
  return lastDecay;
}

/** The counted signals of the subject {@link attentionForColumns} scores, reused (one call at a time). */
const countedOf: number[] = [];
/** Up to this many counted signals are sorted by insertion (a subject has about ten). */
const INSERTION_SORT_MAX = 32;

/**
 * {@link attentionForSubject} of the signals at `members` of a signal table (one subject's, in any
 * order), read from its columns: the same counted signals, summed in the same order with the same
 * operations, without an object per signal (stage 1 scores a million signals, one subject a task).
 * @throws RangeError as {@link attentionForSubject}.
 */
export function attentionForColumns(t: SignalColumns, members: ArrayLike<number>, date: string, asOfMs: number, attention: AttentionConfig): { score: number; signal_count: number } | null {
  const dateDay = dayNumber(date);
  if (dateDay === null) throw new RangeError(`not a YYYY-MM-DD calendar date: "${date}"`);
  const firstDay = dateDay - attention.window_days + 1;
  const ts = t.ts;
  const counted = countedOf;
  counted.length = 0;
  for (let j = 0; j < members.length; j++) {
    const i = members[j]!;
    const day = Math.floor(ts[i]! / DAY_MS);
    if (day >= firstDay && day <= dateDay && ts[i]! < asOfMs) counted.push(i);
  }
  if (counted.length === 0) return null;
  const ids = t.ids;
  // By (ts, signal_id): a total order (ids are unique in a file), so any sort gives the same one.
  // A subject's few signals are sorted in place; Array.prototype.sort copied them into a work
  // array of its own each task.
  if (counted.length <= INSERTION_SORT_MAX) {
    for (let k = 1; k < counted.length; k++) {
      const i = counted[k]!;
      let m = k - 1;
      while (m >= 0 && (ts[counted[m]!]! - ts[i]! || compareText(ids[counted[m]!]!, ids[i]!)) > 0) {
        counted[m + 1] = counted[m]!;
        m--;
      }
      counted[m + 1] = i;
    }
  } else counted.sort((a, b) => ts[a]! - ts[b]! || compareText(ids[a]!, ids[b]!));
  const weightOf = weightsOfKinds(t.kinds, attention.weights);
  const decay = decayByAge(attention.half_life_days, attention.window_days);
  let sum = 0;
  for (const i of counted) {
    const weight = weightOf[t.kind[i]!];
    if (weight === undefined) throw new RangeError(`signal ${ids[i]}: kind "${t.kinds[t.kind[i]!]!}" has no weight`);
    const age = dateDay - Math.floor(ts[i]! / DAY_MS);
    const d = decay[age];
    sum += weight * t.value[i]! * (d !== undefined ? d : 0.5 ** (age / attention.half_life_days));
  }
  const score = round6(sum);
  if (!Number.isFinite(score)) throw new RangeError(`attention score of ${t.subjects[t.subject[counted[0]!]!]} overflows`);
  return { score, signal_count: counted.length };
}

/**
 * The scores of every subject with at least one counted signal on `date`, in ascending
 * subject_ref order.
 */
export function scoreSubjects(groups: ReadonlyMap<string, readonly Signal[]>, date: string, asOfMs: number, attention: AttentionConfig): SubjectScore[] {
  const out: SubjectScore[] = [];
  for (const [subject_ref, signals] of groups) {
    const result = attentionForSubject(signals, date, asOfMs, attention);
    if (result !== null) out.push({ subject_ref, ...result });
  }
  return out.sort((a, b) => compareText(a.subject_ref, b.subject_ref));
}

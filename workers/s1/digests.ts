import { createHash } from 'node:crypto';
import stringify from 'fast-json-stable-stringify';
import { DAY_MS, dayNumber } from './dates.js';
import { compareSignals } from './math/attention.js';
import { compareText } from './math/order.js';
import { tsText, type Signal } from './signals.js';

/**
 * The two digests that make Season 1 ids cover what their output depends on (S1-SPEC "Digests").
 * Pure: no I/O; the callers hand in the signals and the row ids.
 */

/** The digest of the empty text (no signal, no counted row): the first 16 hex digits of sha256(""). */
export const EMPTY_DIGEST = 'e3b0c44298fc1c14';

/** First 16 hex digits of sha256 over `lines`, each followed by `\n` (UTF-8). */
export function digestOfLines(lines: Iterable<string>): string {
  const h = createHash('sha256');
  for (const line of lines) h.update(`${line}\n`);
  return h.digest('hex').slice(0, 16);
}

/**
 * The instants stage 1 reads for a date, `[from_ms, to_ms)`: the window's first day at midnight
 * up to the earlier of the day after `date` and `as_of`. A signal counts exactly when its `ts_ms`
 * lies in it (its UTC date in `[date - window_days + 1, date]` and `ts < as_of`).
 * @throws RangeError when `date` is not a `YYYY-MM-DD` calendar date.
 */
export function windowBounds(date: string, asOfMs: number, windowDays: number): { from_ms: number; to_ms: number } {
  const last = dayNumber(date);
  if (last === null) throw new RangeError(`not a YYYY-MM-DD calendar date: "${date}"`);
  return { from_ms: (last - windowDays + 1) * DAY_MS, to_ms: Math.min((last + 1) * DAY_MS, asOfMs) };
}

/** One line of the inputs digest: the stable stringification of `{signal_id, ts, subject_ref, kind, value}`, `ts` as written. */
export function signalDigestLine(s: Signal): string {
  return stringify({ signal_id: s.signal_id, ts: tsText(s), subject_ref: s.subject_ref, kind: s.kind, value: s.value });
}

/**
 * The inputs digest of a date from any list of signals (filters and sorts them itself): one
 * {@link signalDigestLine} per signal in the window, ascending (instant of `ts`, `signal_id`).
 * {@link EMPTY_DIGEST} when none is in the window.
 */
export function inputsDigest(signals: readonly Signal[], date: string, asOfMs: number, windowDays: number): string {
  const { from_ms, to_ms } = windowBounds(date, asOfMs, windowDays);
  const used = signals.filter((s) => s.ts_ms >= from_ms && s.ts_ms < to_ms).sort(compareSignals);
  return digestOfLines(used.map(signalDigestLine));
}

/**
 * The counted digest of a date: the ids of every projection row settlement counts for it (the
 * published runs' rows for earlier dates, this run's for the date), sorted ascending by code
 * unit, one a line. {@link EMPTY_DIGEST} when there is none.
 */
export function countedDigest(ids: Iterable<string>): string {
  return digestOfLines([...ids].sort(compareText));
}

/**
 * The signals of a file sorted once by (instant, signal_id): the signals of any date's window are
 * then one contiguous slice, found by binary search (a backfill of many dates over a million
 * signals sorts once, not once a date).
 */
export class SortedSignals {
  private readonly sorted: readonly Signal[];

  constructor(signals: Iterable<Signal>) {
    this.sorted = [...signals].sort(compareSignals);
  }

  /** How many signals the file holds. */
  get size(): number {
    return this.sorted.length;
  }

  /** How many signals stage 1 uses for the date. */
  count(date: string, asOfMs: number, windowDays: number): number {
    const [lo, hi] = this.range(date, asOfMs, windowDays);
    return hi - lo;
  }

  /** The date's inputs digest; the same value as {@link inputsDigest} over the same signals. */
  digest(date: string, asOfMs: number, windowDays: number): string {
    const [lo, hi] = this.range(date, asOfMs, windowDays);
    const sorted = this.sorted;
    // Line by line into the hash: a window of a million signals never exists as one text.
    return digestOfLines(
      (function* lines() {
        for (let i = lo; i < hi; i++) yield signalDigestLine(sorted[i]!);
      })(),
    );
  }

  private range(date: string, asOfMs: number, windowDays: number): [number, number] {
    const { from_ms, to_ms } = windowBounds(date, asOfMs, windowDays);
    if (to_ms <= from_ms) return [0, 0];
    return [this.firstAtOrAfter(from_ms), this.firstAtOrAfter(to_ms)];
  }

  private firstAtOrAfter(ms: number): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sorted[mid]!.ts_ms < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

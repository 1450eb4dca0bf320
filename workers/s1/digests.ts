import { createHash } from 'node:crypto';
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
  // The same bytes in chunks of about 64 KiB: one update per line cost a native call per signal.
  let chunk = '';
  for (const line of lines) {
    chunk += `${line}\n`;
    if (chunk.length >= 65_536) {
      h.update(chunk);
      chunk = '';
    }
  }
  if (chunk !== '') h.update(chunk);
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
  // Written out with its keys in sorted order: byte for byte what fast-json-stable-stringify gives
  // for these five fields (strings as JSON.stringify, a finite number as String), without sorting
  // the keys of a fresh object per signal, which took a tenth of a 1M-signal run.
  const value = Number.isFinite(s.value) ? String(s.value) : 'null';
  return `{"kind":${JSON.stringify(s.kind)},"signal_id":${JSON.stringify(s.signal_id)},"subject_ref":${JSON.stringify(s.subject_ref)},"ts":${JSON.stringify(tsText(s))},"value":${value}}`;
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

/** Index bits of the sort key below: up to 4M signals (more fall back to the comparator sort). */
const INDEX_BITS = 22n;

/**
 * `signals` sorted by {@link compareSignals}, in place. Keyed by instant in a BigUint64Array
 * (instant << 22 | index), whose native numeric sort is several times faster on a million signals
 * than a comparator called some twenty million times; runs of one instant are then ordered by
 * signal_id. Signals outside the key's range (a negative instant, one past 2109, over 4M signals)
 * take the comparator sort: same order either way.
 */
function sortSignals(signals: Signal[]): Signal[] {
  const n = signals.length;
  if (n < 2 || n >= 1 << Number(INDEX_BITS) || signals.some((x) => !Number.isSafeInteger(x.ts_ms) || x.ts_ms < 0 || x.ts_ms >= 2 ** 41)) return signals.sort(compareSignals);
  const keys = new BigUint64Array(n);
  for (let i = 0; i < n; i++) keys[i] = (BigInt(signals[i]!.ts_ms) << INDEX_BITS) | BigInt(i);
  keys.sort();
  const mask = (1n << INDEX_BITS) - 1n;
  const out = new Array<Signal>(n);
  for (let i = 0; i < n; i++) out[i] = signals[Number(keys[i]! & mask)]!;
  for (let i = 0; i < n;) {
    let j = i + 1;
    while (j < n && out[j]!.ts_ms === out[i]!.ts_ms) j++;
    if (j - i > 1) {
      const run = out.slice(i, j).sort(compareSignals);
      for (let k = 0; k < run.length; k++) out[i + k] = run[k]!;
    }
    i = j;
  }
  return out;
}

/**
 * The signals of a file sorted once by (instant, signal_id): the signals of any date's window are
 * then one contiguous slice, found by binary search (a backfill of many dates over a million
 * signals sorts once, not once a date).
 */
export class SortedSignals {
  private readonly sorted: readonly Signal[];

  constructor(signals: Iterable<Signal>) {
    this.sorted = sortSignals([...signals]);
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
